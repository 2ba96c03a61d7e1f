#include <xtgrad/optim/clip.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

double grad_norm(const std::vector<Parameter*>& params) {
    double s = 0.0;
    for (const Parameter* p : params) s += vmath::sum_squares(p->grad.data(), p->grad.size());
    return std::sqrt(s);
}

ClipResult clip_grad_norm(const std::vector<Parameter*>& params, double max_norm) {
    if (!(max_norm > 0.0)) throw ConfigError(fmt::format("clip_grad_norm: max_norm must be positive, got {}", max_norm));
    ClipResult r;
    r.norm = grad_norm(params);
    r.finite = std::isfinite(r.norm);
    if (!r.finite) return r;
    const double coef = max_norm / (r.norm + 1e-6);
    if (coef < 1.0) {
        const auto c = static_cast<float>(coef);
        for (Parameter* p : params) vmath::scale(p->grad.data(), p->grad.size(), c);
        r.clipped = true;
    }
    return r;
}

std::size_t clip_grad_value(const std::vector<Parameter*>& params, float limit) {
    if (!(limit > 0.0f)) throw ConfigError(fmt::format("clip_grad_value: limit must be positive, got {}", limit));
    std::size_t n = 0;
    for (Parameter* p : params)
        for (float& g : p->grad) {
            const float c = std::clamp(g, -limit, limit);
            n += c != g;
            g = c;
        }
    return n;
}

}  // namespace xtgrad
