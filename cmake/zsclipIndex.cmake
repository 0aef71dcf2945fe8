# ---- zsclip::index: the embedding index (include/zsclip/index.h, src/index/) ----
# Exact search needs nothing more; approximate search uses FAISS (Debian: libfaiss-dev, a static
# library that needs OpenMP) when ZSCLIP_WITH_FAISS is ON, which it is by default when FAISS is found.
# It embeds through the encoder interfaces and the embedding engine (zsclip::core): LibTorch is
# needed only by whoever passes it a zsclip::Model.
find_package(OpenMP QUIET COMPONENTS CXX)
find_package(faiss QUIET CONFIG)
if(faiss_FOUND AND OpenMP_CXX_FOUND)
  set(_zsclip_faiss_default ON)
else()
  set(_zsclip_faiss_default OFF)
endif()
option(ZSCLIP_WITH_FAISS "Approximate search in zsclip::index with FAISS (libfaiss-dev)" ${_zsclip_faiss_default})
if(ZSCLIP_WITH_FAISS AND NOT (faiss_FOUND AND OpenMP_CXX_FOUND))
  message(FATAL_ERROR "ZSCLIP_WITH_FAISS is ON but FAISS or OpenMP was not found (Debian: apt-get install libfaiss-dev)")
endif()
message(STATUS "zsclip: approximate index search with FAISS: ${ZSCLIP_WITH_FAISS}")

set(ZSCLIP_INDEX_SOURCES src/index/ann.cpp src/index/index.cpp src/index/index_build.cpp
    src/index/kernels.cpp src/index/npy.cpp)
add_library(zsclip_index ${ZSCLIP_INDEX_SOURCES})
add_library(zsclip::index ALIAS zsclip_index)
set_target_properties(zsclip_index PROPERTIES EXPORT_NAME index OUTPUT_NAME zsclip_index)
target_include_directories(zsclip_index
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
         $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(zsclip_index PUBLIC zsclip_core)
target_link_libraries(zsclip_index PRIVATE nlohmann_json::nlohmann_json Threads::Threads)
if(ZSCLIP_WITH_FAISS)
  target_link_libraries(zsclip_index PRIVATE faiss OpenMP::OpenMP_CXX)
  target_compile_definitions(zsclip_index PRIVATE ZSCLIP_WITH_FAISS=1)
endif()
list(APPEND ZSCLIP_INSTALL_TARGETS zsclip_index)
if(TARGET zsclip_cli)
  target_link_libraries(zsclip_cli PRIVATE zsclip_index)
endif()
