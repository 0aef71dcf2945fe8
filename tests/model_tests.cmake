# Model, head, classifier and CLI tests (LibTorch). They use exports of ../shared/clip/openai-tiny
# made by the `export_fixtures` test (models/export_clip.py with Debian's /usr/bin/python3) and the
# shipped models/shapes.
set(ZSCLIP_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch for the export scripts")
set(ZSCLIP_FIXTURE_DIR ${PROJECT_BINARY_DIR}/fixtures)
add_test(NAME export_fixtures
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/export_fixtures.sh ${ZSCLIP_PYTHON} ${PROJECT_SOURCE_DIR}
          ${ZSCLIP_SHARED_DIR} ${ZSCLIP_FIXTURE_DIR})
set_tests_properties(export_fixtures PROPERTIES FIXTURES_SETUP openai_tiny SKIP_RETURN_CODE 77 TIMEOUT 600)

set(_model_tests bad_images_test.cpp cifar100_test.cpp classifier_threads_test.cpp cli_stream_test.cpp
    cli_test.cpp cli_tokenize_sentencepiece_test.cpp file_check_test.cpp index/index_cli_test.cpp
    input_output_test.cpp model_errors_test.cpp model_security_test.cpp model_test.cpp
    precision_test.cpp siglip_parity_test.cpp triton_export_test.cpp zoo_parity_test.cpp)
if(TARGET zsclip_server)  # ZSCLIP_BUILD_SERVER=OFF: no server, no server test
  list(APPEND _model_tests server_test.cpp)
endif()
foreach(_src ${_model_tests})
  get_filename_component(_name ${_src} NAME_WE)
  add_executable(${_name} ${_src})
  target_include_directories(${_name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${_name} PRIVATE zsclip zsclip_index GTest::gtest GTest::gtest_main nlohmann_json::nlohmann_json Threads::Threads)
  target_compile_definitions(${_name} PRIVATE
    ZSCLIP_SHARED_DIR="${ZSCLIP_SHARED_DIR}"
    ZSCLIP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    ZSCLIP_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data"
    ZSCLIP_BINARY_DIR="${PROJECT_BINARY_DIR}"
    ZSCLIP_FIXTURE_DIR="${ZSCLIP_FIXTURE_DIR}"
    ZSCLIP_CLI="$<TARGET_FILE:zsclip_cli>"
    ZSCLIP_PYTHON="${ZSCLIP_PYTHON}")
  add_dependencies(${_name} zsclip_cli)
  set(_shards 1)
  if(_name MATCHES "^(index_cli_test|input_output_test)$")  # the longest: shards keep both cores busy
    set(_shards 2)
  endif()
  zsclip_gtest(${_name} SHARDS ${_shards} PROPERTIES FIXTURES_REQUIRED openai_tiny TIMEOUT 900)
endforeach()
if(TARGET server_test)
  target_link_libraries(server_test PRIVATE zsclip_server)
endif()

# The precision tests again with oneDNN held to AVX2 (as on a CPU without AVX-512 or VNNI): int8
# must run there (avx2-u8s7x2, whose products oneDNN makes with vpmaddubsw) and must not saturate.
if(TARGET precision_test)
  zsclip_gtest(precision_test TEST_NAME precision_test_avx2 ENVIRONMENT ONEDNN_MAX_CPU_ISA=AVX2
    PROPERTIES FIXTURES_REQUIRED openai_tiny TIMEOUT 900)
endif()

# The whole CLI on an AVX2-only CPU, emulated on an AVX-512 one (tools/cpu_mask/as-avx2 hides the
# instructions from every library in the process): AVX2 kernels chosen, the native answers given.
add_test(NAME as_avx2_cli
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cpu/as_avx2_test.sh $<TARGET_FILE:zsclip_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(as_avx2_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

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

# models/export_clip.py on every reference folder of ../shared/clip: parity with reference.json,
# .safetensors vs .bin byte-identical exports, refusals (exit 77 when ../shared or torch is absent).
add_test(NAME export_python
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/export_test.py --source ${PROJECT_SOURCE_DIR}
          --shared ${ZSCLIP_SHARED_DIR} --work ${PROJECT_BINARY_DIR}/tmp/export_test)
set_tests_properties(export_python PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)

# A TorchScript checkpoint is code: the exporter reads its tensors without running it, or refuses it naming
# --trust-code (a malicious archive's __setstate__ must not run; hand-made hostile pickles are refused).
add_test(NAME export_torchscript_safety
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torchscript_safety_test.py --source ${PROJECT_SOURCE_DIR}
          --shared ${ZSCLIP_SHARED_DIR} --work ${PROJECT_BINARY_DIR}/tmp/torchscript_safety)
set_tests_properties(export_torchscript_safety PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# tools/model_digest.py (README.md, "Security"): the folder digest is the coreutils pipeline the README
# gives; --expect refuses a changed, extra or missing file and a symbolic link.
add_test(NAME tools_model_digest
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/model_digest_test.sh ${ZSCLIP_PYTHON} ${PROJECT_SOURCE_DIR}
          ${PROJECT_BINARY_DIR}/tmp/model_digest)
set_tests_properties(tools_model_digest PROPERTIES TIMEOUT 60)

# README.md's parity table is written by tools/parity_report.py --update-readme; this fails when the
# code no longer gives its numbers (to within the last digit).
add_test(NAME readme_parity_table
  COMMAND ${ZSCLIP_PYTHON} ${PROJECT_SOURCE_DIR}/tools/parity_report.py --check-readme
          --zsclip $<TARGET_FILE:zsclip_cli> --fixtures ${ZSCLIP_FIXTURE_DIR}
          --shared ${ZSCLIP_SHARED_DIR} --readme ${PROJECT_SOURCE_DIR}/README.md)
set_tests_properties(readme_parity_table PROPERTIES
  FIXTURES_REQUIRED openai_tiny SKIP_RETURN_CODE 77 TIMEOUT 300)

# examples/dask_index.py on a LocalCluster of 2 workers (python3-distributed), one killed mid-run:
# the merged index must equal a single-process build. Skips (77) without Dask.
add_test(NAME dask_index
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/dask_index_test.py $<TARGET_FILE:zsclip_cli>
          ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/tmp/dask_index)
set_tests_properties(dask_index PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# models/clip_bpe.py (the Python scripts' CLIP tokenizer) against OpenAI's cases and the C++ tokenizer,
# and models/bpe_learn.py against the shipped shapes vocabulary.
add_test(NAME python_clip_bpe
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/clip_bpe_test.py ${PROJECT_SOURCE_DIR}
          ${ZSCLIP_SHARED_DIR} $<TARGET_FILE:zsclip_cli>)
set_tests_properties(python_clip_bpe PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# tests/safetensors_fuzz.py: ~3000 directed and seeded random mutants of small safetensors files (header
# length, JSON structure, data) read with models/safetensors_io.py; each must be read correctly or refused
# with a SafetensorsError naming the file, in a watched worker (hangs, crashes). Exit 77 without torch.
add_test(NAME safetensors_fuzz
  COMMAND ${ZSCLIP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/safetensors_fuzz.py --source ${PROJECT_SOURCE_DIR}
          --work ${PROJECT_BINARY_DIR}/tmp/safetensors_fuzz --seed 0 --iterations 3000 --seconds 20)
set_tests_properties(safetensors_fuzz PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

# ctest starts the costliest tests first (a fresh build has no timings of its own yet): the fixture
# that every model test waits for, then the long Python ones, which need no fixture.
set_tests_properties(export_fixtures PROPERTIES COST 1000)
set_tests_properties(export_python train_shapes_smoke PROPERTIES COST 500)
