# One fuzz test (registered by fuzz/CMakeLists.txt): runs FUZZER for RUNS inputs,
# starting from the corpus in CORPUS. Fails on any crash, sanitizer report, leak,
# timeout or broken property, and says where the input that did it was saved.
#
# The repository's corpus is read, never written: libFuzzer writes new inputs to
# the first directory it is given, here WORK/new, which starts empty every run so
# that each run takes the same time.
foreach(var FUZZER CORPUS WORK RUNS SEED)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${FUZZER}")
  message(FATAL_ERROR "${FUZZER} is missing: build the main build first (cmake --build build)")
endif()

file(REMOVE_RECURSE "${WORK}")
# TMPDIR inside WORK: a target's scratch files (fuzz_scenario's) left by a crash go
# with the next run.
file(MAKE_DIRECTORY "${WORK}/new" "${WORK}/artifacts" "${WORK}/tmp")
set(args -runs=${RUNS} -seed=${SEED} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix=${WORK}/artifacts/)
if(DEFINED DICT AND EXISTS "${DICT}")
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "TMPDIR=${WORK}/tmp"
                        "${FUZZER}" ${args} "${WORK}/new" "${CORPUS}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB saved "${WORK}/artifacts/*")
  message(FATAL_ERROR "fuzz: ${FUZZER} failed (${rc}); input saved as: ${saved}\n"
                      "reproduce with: ${FUZZER} <that file>; once fixed, add it to ${CORPUS}/")
endif()
