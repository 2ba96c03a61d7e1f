// The forward context: what every layer's forward pass is given, in one argument.
#pragma once

#include <cstddef>

#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Where a probed value was seen: the layer, the direction (0 forward, 1 reverse) and the time step in the window.
struct ProbePoint {
    std::size_t layer = 0, dir = 0, t = 0;
};

// Receives the named intermediates that layers and cells expose (gates, cell states) when a report asks for them.
// Cells call Step::probe; with no receiver set, a probe costs one pointer test.
class Probes {
public:
    virtual ~Probes() = default;
    // A value computed at `where`, named by the cell ("i", "f", "c", ...); valid until the tape is cleared.
    virtual void record(const ProbePoint& where, const char* name, Var value) = 0;
};

// The tape a forward pass records on, the generator its dropouts draw from, whether it trains, where probed
// values go, and which of the whole batch's streams this process holds (data-parallel training). Cheap to copy;
// one per thread (tapes and generators are not shared between threads).
struct Ctx {
    Tape& tape;
    Rng& rng;
    bool training = false;
    Probes* probes = nullptr;  // null: nothing is recorded for reports
    // Data-parallel training: this process holds streams [row_offset, row_offset + its batch) of a batch of
    // global_batch streams. 0: the process holds the whole batch.
    std::size_t row_offset = 0, global_batch = 0;

    // Whether the batch is split between processes (dropout must then know each value's streams).
    bool sharded() const { return global_batch != 0; }
    // The key of one dropout mask over a window of `batch` streams per step: one draw from rng (the same in every
    // process, which all draw alike), rows mapped to the whole batch's streams. Throws ConfigError when this
    // process's streams would lie outside the whole batch.
    MaskKey mask_key(std::size_t batch);
};

}  // namespace xtgrad
