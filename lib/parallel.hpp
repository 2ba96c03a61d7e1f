// Data parallelism for the large elementwise passes (cross-entropy over the logits, optimiser steps, clipping): a
// range split into one fixed part per thread, run by the calling thread and a few helper threads.
#pragma once

#include <cstddef>

namespace xtgrad {

// Runs f(begin, end) on the parts of [0, n): part k of `parts` covers [k n / parts, (k + 1) n / parts), so the
// split, and any result combined part by part in order, depends only on n and the thread count, never on timing.
// With fewer than 2 * grain items, one thread, or another parallel_for already running (on another thread, or
// nested), f(0, n) runs on the calling thread. f must not throw. Allocates nothing after the first call.
template <class F>
void parallel_for(std::size_t n, std::size_t grain, F&& f);

// How many parts a parallel_for over n items with this grain splits into (1 .. parallel_threads()).
std::size_t parallel_parts(std::size_t n, std::size_t grain);

// Threads parallel_for uses (the caller included): set_blas_threads sets it with the products' threads.
std::size_t parallel_threads();
void set_parallel_threads(std::size_t n);

namespace detail {
using PartFn = void (*)(void* ctx, std::size_t begin, std::size_t end);
void parallel_run(std::size_t n, std::size_t parts, void* ctx, PartFn fn);
}  // namespace detail

template <class F>
void parallel_for(std::size_t n, std::size_t grain, F&& f) {
    const std::size_t parts = parallel_parts(n, grain);
    if (parts <= 1) {
        if (n) f(std::size_t{0}, n);
        return;
    }
    detail::parallel_run(n, parts, &f, [](void* ctx, std::size_t b, std::size_t e) { (*static_cast<F*>(ctx))(b, e); });
}

}  // namespace xtgrad
