// The command line of a language-model program: train, eval, generate, gradcheck and report, for whatever cells and
// models the program registered. xtgrad-lm is this with the built-in cells; a user's program is this with theirs.
#pragma once

#include <xtgrad/apps/lm/registry.hpp>

namespace xtgrad {

// Runs the command line on argv with the models of `registry` (whose `program` names the program in messages).
// Returns the exit status: 0 done, 1 a file or runtime error, 2 a usage error, 3 training stopped on a NaN or
// Inf, 4 output could not be written. With oneDNN and OMP_WAIT_POLICY unset it first re-executes the program once
// with OMP_WAIT_POLICY=passive (prefer_passive_openmp), so call it with main's own argc and argv.
int run_lm(int argc, char** argv, const Registry& registry);

}  // namespace xtgrad
