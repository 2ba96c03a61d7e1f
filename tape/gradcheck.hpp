// Gradient checking: compares the tape's gradients with central finite differences, for ops, layers and cells.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Settings of a gradient check.
struct GradcheckOptions {
    float eps = 1e-2f;          // finite-difference step (float32 values: 1e-2 balances rounding and truncation)
    double tolerance = 1e-2;    // largest accepted relative error
    double abs_floor = 1e-2;    // relative error is |a - n| / max(|a|, |n|, abs_floor)
    std::size_t max_per_param = 0;  // check at most this many entries per parameter, spread evenly (0: all)
};

// The outcome of a gradient check: the worst entry found and where it is.
struct GradcheckReport {
    double max_rel_error = 0.0;  // worst relative error over every checked entry
    double max_abs_error = 0.0;  // worst absolute error
    std::string where;           // "name[r, c]" of the worst entry
    double analytic = 0.0;       // the tape's gradient at the worst entry
    double numeric = 0.0;        // the finite-difference gradient there
    std::size_t checked = 0;     // entries checked
    bool ok = false;             // max_rel_error <= tolerance

    // One line: "ok|FAIL rel 1.2e-04 at W[0, 1] (analytic ..., numeric ...), N entries".
    std::string summary() const;
};

// Checks d loss / d p for every p in params. `loss` records a (1 x 1) loss on the tape it is given and must be
// deterministic (reseed any dropout generator inside it). The tape is cleared before each evaluation.
// Parameters' gradients are overwritten; their values are restored.
GradcheckReport gradcheck(Tape& tape, const std::function<Var(Tape&)>& loss, const std::vector<Parameter*>& params,
                          const GradcheckOptions& options = {});

// A scalar that depends on every entry of y with its own weight: sum(y * R), R ~ U(-1, 1) from seed. Gradient
// checks of a non-scalar output use it as the loss, so that no error can cancel out across entries.
Var random_projection(Var y, std::uint64_t seed);

}  // namespace xtgrad
