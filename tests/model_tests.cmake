# Model, head, classifier and CLI tests (LibTorch). They use exports of ../shared/clip/openai-tiny
# made by the `export_fixtures` test (models/export_clip.py with Debian's /usr/bin/python3) and the
# shipped models/shapes.
set(ZSCLIP_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch for the export scripts")
set(ZSCLIP_FIXTURE_DIR ${PROJECT_BINARY_DIR}/fixtures)
add_test(NAME export_fixtures
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/export_fixtures.sh ${ZSCLIP_PYTHON} ${PROJECT_SOURCE_DIR}
          ${ZSCLIP_SHARED_DIR} ${ZSCLIP_FIXTURE_DIR})
set_tests_properties(export_fixtures PROPERTIES FIXTURES_SETUP openai_tiny SKIP_RETURN_CODE 77 TIMEOUT 600)

file(GLOB _model_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)
foreach(_src ${_model_tests})
  get_filename_component(_name ${_src} NAME_WE)
  add_executable(${_name} ${_src})
  target_include_directories(${_name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${_name} PRIVATE zsclip GTest::gtest GTest::gtest_main nlohmann_json::nlohmann_json Threads::Threads)
  target_compile_definitions(${_name} PRIVATE
    ZSCLIP_SHARED_DIR="${ZSCLIP_SHARED_DIR}"
    ZSCLIP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    ZSCLIP_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data"
    ZSCLIP_BINARY_DIR="${PROJECT_BINARY_DIR}"
    ZSCLIP_FIXTURE_DIR="${ZSCLIP_FIXTURE_DIR}"
    ZSCLIP_CLI="$<TARGET_FILE:zsclip_cli>"
    ZSCLIP_PYTHON="${ZSCLIP_PYTHON}")
  add_dependencies(${_name} zsclip_cli)
  gtest_discover_tests(${_name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120
    PROPERTIES FIXTURES_REQUIRED openai_tiny TIMEOUT 900)
endforeach()

# Install + find_package + add_subdirectory, as users consume zsclip.
add_test(NAME packaging_install_and_subdirectory
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/run.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}
          ${PROJECT_BINARY_DIR}/tmp/packaging)
set_tests_properties(packaging_install_and_subdirectory PROPERTIES TIMEOUT 1200 RUN_SERIAL TRUE)

# models/train_shapes.py: a tiny data-parallel run, twice, must work and be reproducible.
add_test(NAME train_shapes_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/train_shapes_smoke.sh ${ZSCLIP_PYTHON} ${PROJECT_SOURCE_DIR}
          ${PROJECT_BINARY_DIR}/tmp/train_shapes_smoke)
set_tests_properties(train_shapes_smoke PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)

# models/clip_bpe.py (the Python scripts' CLIP tokenizer) against OpenAI's cases and the C++ tokenizer,
# and models/bpe_learn.py against the shipped shapes vocabulary.
add_test(NAME python_clip_bpe
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/clip_bpe_test.py ${PROJECT_SOURCE_DIR}
          ${ZSCLIP_SHARED_DIR} $<TARGET_FILE:zsclip_cli>)
set_tests_properties(python_clip_bpe PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
