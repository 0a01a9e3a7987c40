# Sanitizers as an INTERFACE target, set by the asan-ubsan preset. The same flags
# reach the tested and the shipped binary of a build: no per-target differences.
add_library(tranche_sanitizers INTERFACE)
if(TRANCHE_SANITIZERS)
  target_compile_options(tranche_sanitizers INTERFACE
    -fsanitize=${TRANCHE_SANITIZERS} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(tranche_sanitizers INTERFACE -fsanitize=${TRANCHE_SANITIZERS})
endif()

# tranche_options: what every tranche target links.
add_library(tranche_options INTERFACE)
target_link_libraries(tranche_options INTERFACE tranche_warnings tranche_sanitizers)
target_include_directories(tranche_options INTERFACE ${PROJECT_SOURCE_DIR})
