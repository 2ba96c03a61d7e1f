#include <xtgrad/tape/gradcheck.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

std::string GradcheckReport::summary() const {
    return fmt::format("{} rel {:.2e} abs {:.2e} at {} (analytic {:.6g}, numeric {:.6g}), {} entries",
                       ok ? "ok" : "FAIL", max_rel_error, max_abs_error, where, analytic, numeric, checked);
}

namespace {

double eval_loss(Tape& tape, const std::function<Var(Tape&)>& loss) {
    tape.clear();
    const Var l = loss(tape);
    const Array& v = l.value();
    if (v.size() != 1) throw ShapeError(fmt::format("gradcheck: the loss must be (1 x 1), got {}", shape_str(v)));
    return v(0, 0);
}

}  // namespace

GradcheckReport gradcheck(Tape& tape, const std::function<Var(Tape&)>& loss, const std::vector<Parameter*>& params,
                          const GradcheckOptions& opt) {
    for (Parameter* p : params) p->zero_grad();
    tape.clear();
    tape.backward(loss(tape));
    std::vector<Array> analytic;
    for (Parameter* p : params) analytic.push_back(p->grad);

    GradcheckReport rep;
    rep.where = "(nothing checked)";
    for (std::size_t k = 0; k < params.size(); ++k) {
        Parameter& p = *params[k];
        const std::size_t n = p.value.size(), cols = p.value.shape()[1];
        const std::size_t count = opt.max_per_param ? std::min(n, opt.max_per_param) : n;
        for (std::size_t c = 0; c < count; ++c) {
            const std::size_t i = count == n ? c : c * n / count;
            float& x = p.value.data()[i];
            const float saved = x;
            x = saved + opt.eps;
            const double up = eval_loss(tape, loss);
            x = saved - opt.eps;
            const double down = eval_loss(tape, loss);
            x = saved;
            const double num = (up - down) / (2.0 * static_cast<double>(opt.eps));
            const double ana = analytic[k].data()[i];
            const double abs_err = std::abs(ana - num);
            const double rel = abs_err / std::max({std::abs(ana), std::abs(num), opt.abs_floor});
            rep.max_abs_error = std::max(rep.max_abs_error, abs_err);
            if (rel > rep.max_rel_error || rep.checked == 0) {
                rep.max_rel_error = rel;
                rep.where = fmt::format("{}[{}, {}]", p.name.empty() ? fmt::format("param{}", k) : p.name, i / cols,
                                        i % cols);
                rep.analytic = ana;
                rep.numeric = num;
            }
            ++rep.checked;
        }
    }
    tape.clear();
    rep.ok = rep.max_rel_error <= opt.tolerance;
    return rep;
}

Var random_projection(Var y, std::uint64_t seed) {
    Rng rng(seed);
    Array r(y.value().shape());
    fill_uniform(r, rng, -1.0f, 1.0f);
    return sum(mul(y, y.tape->constant(r)));
}

}  // namespace xtgrad
