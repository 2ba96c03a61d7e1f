// The gradient check of a registered cell: what `PROGRAM gradcheck --model NAME` runs, the first thing to try
// after writing a cell.
#pragma once

#include <string>
#include <vector>

#include <xtgrad/layers/cell.hpp>
#include <xtgrad/tape/gradcheck.hpp>

namespace xtgrad {

// How a cell is checked: a stack of `layers` layers of the cell over `steps` time steps of `batch` sequences,
// from a random carried-in state, the loss a random projection of every output and of the final state.
struct CellCheckOptions {
    std::size_t layers = 2, steps = 4, batch = 2, input = 3, hidden = 4;
    bool bidirectional = false;
    bool padded = false;       // the second sequence is one step shorter (exercises masking)
    std::uint64_t seed = 1;
    CellOptions options;       // passed to the cell
    GradcheckOptions check;    // step size, tolerance
};

// Gradient-checks a cell through Recurrent as described by options: one entry per parameter in the report's
// params, and one for the input "x". Throws what building the cell throws.
GradcheckReport check_cell(const CellFactory& make, const CellCheckOptions& options);

}  // namespace xtgrad
