# Warnings as an INTERFACE target: every tranche target links tranche_warnings.
# -Wnull-dereference is left out: GCC 12 reports false positives inside libstdc++
# when it inlines CLI11 (std::string moves in CLI::detail::split).
add_library(tranche_warnings INTERFACE)
target_compile_options(tranche_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(TRANCHE_WERROR)
  target_compile_options(tranche_warnings INTERFACE -Werror)
endif()
