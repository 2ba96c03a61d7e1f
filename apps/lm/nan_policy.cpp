#include <xtgrad/apps/lm/nan_policy.hpp>

#include <cmath>

#include <fmt/core.h>
#include <fmt/format.h>

namespace xtgrad {

bool NanPolicy::tolerate(Where where) {
    if (where == Where::valid_loss || in_a_row_ >= limit_) return false;
    ++in_a_row_;
    ++skipped_;
    return true;
}

std::string NanPolicy::stop_message(Where where, double value, std::size_t epoch, std::size_t batch,
                                    const std::vector<std::string>& kept) {
    const char* what = where == Where::train_loss ? "the training loss" : where == Where::grad_norm ? "the gradient norm"
                                                                                                 : "the validation loss";
    const std::string at = where == Where::valid_loss ? fmt::format("at the end of epoch {}", epoch)
                                                      : fmt::format("at epoch {} batch {}", epoch, batch);
    const std::string files = kept.empty() ? "no checkpoint of this run had been written yet"
                                           : fmt::format("the last good files are kept: {}", fmt::join(kept, ", "));
    const std::string v = where == Where::valid_loss && std::isfinite(value)
                              ? fmt::format("{:.6g} (perplexity beyond range: the model diverged)", value)
                              : fmt::format("{}", value);
    return fmt::format("error: {} became {} {}; stopping ({}). Try a lower --lr, or --clip.", what, v, at, files);
}

}  // namespace xtgrad
