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
# GCC 12 at -O3 (the release preset) reports -Wrestrict inside libstdc++ for
# `"literal" + std::string` and string::insert (GCC bug 105329, fixed in 13):
# false positives in code that is fine, so the warning stays on only where it
# does not misfire.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(tranche_warnings INTERFACE $<$<CONFIG:Release>:-Wno-restrict>)
endif()
