// Gradient checking: compares the tape's gradients with finite differences, for ops, layers and cells.
// docs/design.md ("Gradient checking") explains the estimate, the kink test and what the tolerance means.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Settings of a gradient check.
struct GradcheckOptions {
    float eps = 4e-2f;              // the largest finite-difference step (steps eps, eps/2, eps/4; eps/8.. on retry)
    double tolerance = 5e-3;        // largest accepted relative error of a checked entry
    double abs_floor = 1e-2;        // relative error is |a - n| / max(|a|, |n|, abs_floor, rel_floor * G) ...
    double rel_floor = 5e-2;        // ... where G is the largest |gradient| of the same parameter
    std::size_t max_per_param = 0;  // check at most this many entries per parameter, spread evenly (0: all)
    bool richardson = true;         // numeric = (4 D(eps/2) - D(eps)) / 3, error O(eps^4); false: the plain central
                                    // difference D(eps), error O(eps^2), nothing skipped (the check before issue 10)
    bool skip_kinks = true;         // skip (and count) entries whose estimate cannot be trusted (kink, noise)
    double max_skipped = 0.5;       // a parameter fails when it skipped more than this fraction of its entries + 1
};

// The outcome for one parameter.
struct GradcheckParam {
    std::string name;            // the parameter's name ("param<k>" if it has none)
    double max_rel_error = 0.0;  // worst relative error over its checked entries
    double max_abs_error = 0.0;  // worst absolute error
    std::string where;           // "name[r, c]" of the worst entry
    double analytic = 0.0;       // the tape's gradient there
    double numeric = 0.0;        // the finite-difference estimate there
    std::size_t checked = 0;     // entries compared
    std::size_t skipped = 0;     // entries skipped next to a kink
    bool ok = false;             // max_rel_error <= tolerance, something checked, skipped share <= max_skipped
};

// The outcome of a gradient check: the worst entry over all parameters, and each parameter's own.
struct GradcheckReport {
    double max_rel_error = 0.0;  // worst relative error over every checked entry
    double max_abs_error = 0.0;  // worst absolute error
    std::string where;           // "name[r, c]" of the worst entry
    double analytic = 0.0;       // the tape's gradient at the worst entry
    double numeric = 0.0;        // the finite-difference gradient there
    std::size_t checked = 0;     // entries checked
    std::size_t skipped = 0;     // entries skipped next to a kink (not compared)
    bool ok = false;             // every parameter ok
    std::vector<GradcheckParam> params;  // per parameter, in the order given

    // One line: "ok|FAIL rel 1.2e-04 abs ... at W[0, 1] (analytic ..., numeric ...), N entries, S skipped".
    std::string summary() const;
    // One line per parameter: name, worst relative error, where, entries checked and skipped, ok or FAIL.
    std::string table() const;
};

// Checks d loss / d p for every p in params. `loss` records a (1 x 1) loss on the tape it is given and must be
// deterministic (reseed any dropout generator inside it; a loss that changes between two calls throws Error).
// The tape is cleared before each evaluation. Parameters' gradients are overwritten; their values are restored.
GradcheckReport gradcheck(Tape& tape, const std::function<Var(Tape&)>& loss, const std::vector<Parameter*>& params,
                          const GradcheckOptions& options = {});

// A scalar that depends on every entry of y with its own weight: sum(y * R), R ~ U(-1, 1) from seed, summed in
// double. Gradient checks of a non-scalar output use it as the loss, so that no error can cancel out across entries.
Var random_projection(Var y, std::uint64_t seed);

}  // namespace xtgrad
