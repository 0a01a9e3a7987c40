# Warnings as an INTERFACE target: every tranche target links tranche_warnings.
add_library(tranche_warnings INTERFACE)
target_compile_options(tranche_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wnull-dereference
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(TRANCHE_WERROR)
  target_compile_options(tranche_warnings INTERFACE -Werror)
endif()
