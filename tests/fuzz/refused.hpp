// What the fuzz targets do with an input refused with a clear error: nothing, or print the message when
// XTGRAD_FUZZ_VERBOSE=1 (to see why each seed of a corpus is refused: replay it with the variable set).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>

inline void refused(const std::exception& e) {
    static const bool verbose = [] {
        const char* v = std::getenv("XTGRAD_FUZZ_VERBOSE");
        return v && *v == '1';
    }();
    if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
}
