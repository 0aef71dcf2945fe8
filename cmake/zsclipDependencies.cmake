# Finds every dependency once, for the build tree and (through zsclipConfig.cmake) for users.
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
set(ZSCLIP_OPENCV_LIBS opencv_core opencv_imgproc opencv_imgcodecs)

# utf8proc: Unicode categories, NFC and case mapping for the tokenizer.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(UTF8PROC QUIET IMPORTED_TARGET libutf8proc)
endif()
add_library(zsclip_utf8proc INTERFACE)
if(UTF8PROC_FOUND)
  target_link_libraries(zsclip_utf8proc INTERFACE PkgConfig::UTF8PROC)
else()
  find_path(UTF8PROC_INCLUDE_DIR utf8proc.h REQUIRED)
  find_library(UTF8PROC_LIBRARY utf8proc REQUIRED)
  target_include_directories(zsclip_utf8proc INTERFACE ${UTF8PROC_INCLUDE_DIR})
  target_link_libraries(zsclip_utf8proc INTERFACE ${UTF8PROC_LIBRARY})
endif()

# SentencePiece (Debian: libsentencepiece-dev) runs SigLIP's .model files. Only its header is used
# at build time: src/text/sp_model.cpp loads the library with dlopen (it exports its own protobuf,
# which must not meet LibTorch's). simdjson (libsimdjson-dev) parses Gemma's 30 MB tokenizer.json.
find_path(ZSCLIP_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h REQUIRED)
set(ZSCLIP_SENTENCEPIECE_SONAME "libsentencepiece.so.0" CACHE STRING
    "The SentencePiece library zsclip loads at run time (dlopen)")
add_library(zsclip_sentencepiece INTERFACE)
target_include_directories(zsclip_sentencepiece INTERFACE
  $<BUILD_INTERFACE:${ZSCLIP_SENTENCEPIECE_INCLUDE_DIR}>)
target_link_libraries(zsclip_sentencepiece INTERFACE ${CMAKE_DL_LIBS})
find_package(simdjson REQUIRED)

set(ZSCLIP_TORCH_HAS_CUDA OFF)
if(ZSCLIP_WITH_TORCH)
  find_package(Torch REQUIRED)
  if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda OR TARGET c10_cuda)
    set(ZSCLIP_TORCH_HAS_CUDA ON)
  endif()
  message(STATUS "zsclip: LibTorch ${Torch_VERSION}, CUDA: ${ZSCLIP_TORCH_HAS_CUDA}")
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  # oneDNN (Debian: libdnnl-dev), for zsclip's linear kernels; without it LibTorch's are used.
  find_path(ZSCLIP_ONEDNN_INCLUDE_DIR dnnl.h)
  find_library(ZSCLIP_ONEDNN_LIBRARY dnnl)
  if(ZSCLIP_ONEDNN_INCLUDE_DIR AND ZSCLIP_ONEDNN_LIBRARY)
    message(STATUS "zsclip: oneDNN linear kernels: ${ZSCLIP_ONEDNN_LIBRARY}")
  else()
    message(STATUS "zsclip: oneDNN not found (libdnnl-dev): linear layers use LibTorch's kernels")
  endif()
endif()
