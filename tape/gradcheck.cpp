#include <xtgrad/tape/gradcheck.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/op_kit.hpp>

namespace xtgrad {

std::string GradcheckReport::summary() const {
    return fmt::format("{} rel {:.2e} abs {:.2e} at {} (analytic {:.6g}, numeric {:.6g}), {} entries, {} skipped",
                       ok ? "ok" : "FAIL", max_rel_error, max_abs_error, where, analytic, numeric, checked, skipped);
}

std::string GradcheckReport::table() const {
    std::string s;
    for (const GradcheckParam& p : params) {
        s += fmt::format("{:<4} {:<24} rel {:.2e} at {:<28} (analytic {:.6g}, numeric {:.6g}) {} checked, {} skipped\n",
                         p.ok ? "ok" : "FAIL", p.name, p.max_rel_error, p.where, p.analytic, p.numeric, p.checked,
                         p.skipped);
    }
    return s;
}

namespace {

// The loss in double where the op that made it kept its unrounded value (sum, mean, cross_entropy, ...); `rounded`
// tells when only its float value exists.
double eval_loss(Tape& tape, const std::function<Var(Tape&)>& loss, bool* rounded = nullptr) {
    tape.clear();
    const Var l = loss(tape);
    const Node& n = tape.node(l, "gradcheck");
    const Array& v = n.val();
    if (v.size() != 1) throw ShapeError(fmt::format("gradcheck: the loss must be (1 x 1), got {}", shape_str(v)));
    if (rounded) *rounded = std::isnan(n.f64);
    return std::isnan(n.f64) ? static_cast<double>(v(0, 0)) : n.f64;
}

// The finite-difference estimate at one entry.
struct Estimate {
    double numeric = 0.0;  // the derivative
    double error = 0.0;    // its estimated error: |R(h, h/2) - R(h/2, h/4)|
    double kink = 0.0;     // |s(h) - 4 s(h/2)| / h with s(h) = f(x+h) + f(x-h) - 2 f(x): O(h^3) on a smooth
                           // function, about the jump of the derivative when a kink lies within the stencil
};

// Central differences D(h), D(h/2), D(h/4) at x; numeric = R(h, h/2) = (4 D(h/2) - D(h)) / 3, whose error is
// O(h^4) plus the float32 noise of the loss divided by h. R(h/2, h/4) has 1/16 of the truncation error and twice
// the noise, so their difference bounds the error of R(h, h/2) from above in both regimes.
// `rounding` is the loss's rounding error when it is only known as a float (half an ulp of f0, else 0): every
// difference is uncertain by that much, so R(h, h/2) by 3 rounding / h, which the error estimate never goes below
// (differences that vanish in the rounding are not evidence of a zero derivative).
Estimate estimate(Tape& tape, const std::function<Var(Tape&)>& loss, float& x, double f0, double rounding, double h,
                  bool richardson) {
    const float saved = x;
    double fu[3], fd[3], D[3], step[3];
    const int levels = richardson ? 3 : 1;
    for (int i = 0; i < levels; ++i) {
        const double hi = h / static_cast<double>(1 << i);
        x = static_cast<float>(saved + hi);
        const double up = static_cast<double>(x) - static_cast<double>(saved);  // the step actually taken in float
        fu[i] = eval_loss(tape, loss);
        x = static_cast<float>(saved - hi);
        const double down = static_cast<double>(x) - static_cast<double>(saved);
        fd[i] = eval_loss(tape, loss);
        x = saved;
        step[i] = (up - down) / 2.0;
        D[i] = (fu[i] - fd[i]) / (up - down);
    }
    Estimate e;
    e.numeric = D[0];
    if (!richardson) return e;
    const double R1 = (4.0 * D[1] - D[0]) / 3.0, R2 = (4.0 * D[2] - D[1]) / 3.0;
    e.numeric = R1;
    e.error = std::max(std::abs(R1 - R2), 3.0 * rounding / h);
    e.kink = std::abs((fu[0] + fd[0] - 2.0 * f0) - 4.0 * (fu[1] + fd[1] - 2.0 * f0)) / step[0];
    return e;
}

}  // namespace

GradcheckReport gradcheck(Tape& tape, const std::function<Var(Tape&)>& loss, const std::vector<Parameter*>& params,
                          const GradcheckOptions& opt) {
    if (!(opt.eps > 0.0f) || !(opt.tolerance > 0.0) || !(opt.abs_floor > 0.0))
        throw ConfigError(fmt::format("gradcheck: eps {}, tolerance {} and abs_floor {} must be positive", opt.eps,
                                      opt.tolerance, opt.abs_floor));
    for (Parameter* p : params) p->zero_grad();
    tape.clear();
    tape.backward(loss(tape));
    std::vector<Array> analytic;
    for (Parameter* p : params) analytic.push_back(p->grad);
    bool rounded = false;
    const double f0 = eval_loss(tape, loss, &rounded);
    const double rounding = rounded ? 0.5 * std::abs(static_cast<double>(std::nextafter(static_cast<float>(f0), INFINITY)) -
                                                     static_cast<double>(static_cast<float>(f0)))
                                    : 0.0;
    if (eval_loss(tape, loss) != f0)
        throw Error("gradcheck: the loss changed between two evaluations at the same point; it must be "
                    "deterministic (reseed any dropout generator inside the loss function)");

    GradcheckReport rep;
    rep.where = "(nothing checked)";
    rep.ok = true;
    for (std::size_t k = 0; k < params.size(); ++k) {
        Parameter& p = *params[k];
        GradcheckParam pr;
        pr.name = p.name.empty() ? fmt::format("param{}", k) : p.name;
        pr.where = "(nothing checked)";
        const std::size_t n = p.value.size(), cols = p.value.shape()[1];
        const std::size_t count = opt.max_per_param ? std::min(n, opt.max_per_param) : n;
        // Float32 noise scales with the loss, not with each entry: an entry whose gradient is far below the
        // parameter's largest is compared on the scale of the latter.
        double gmax = 0.0;
        for (float v : analytic[k]) gmax = std::max(gmax, static_cast<double>(std::abs(v)));
        const double floor = std::max(opt.abs_floor, opt.rel_floor * gmax);
        for (std::size_t c = 0; c < count; ++c) {
            const std::size_t i = count == n ? c : c * n / count;
            float& x = p.value.data()[i];
            const double ana = analytic[k].data()[i];
            // An estimate is trusted when its error estimate is within half the tolerance and its kink statistic
            // within the tolerance (docs/design.md derives both bounds). If not, it is retried: after a kink with
            // steps 4 and 16 times smaller (which avoid a kink farther away); on a smooth function with a step twice
            // as large (less noise) and one 4 times smaller (less truncation). An entry never trusted is skipped.
            auto scale_of = [&](const Estimate& e) {
                return std::max({std::abs(ana), std::abs(e.numeric), floor});
            };
            auto kinked = [&](const Estimate& e) { return !(e.kink <= opt.tolerance * scale_of(e)); };
            auto trusted = [&](const Estimate& e) {
                return !kinked(e) && e.error <= 0.5 * opt.tolerance * scale_of(e);
            };
            Estimate e = estimate(tape, loss, x, f0, rounding, opt.eps, opt.richardson);
            if (opt.richardson && opt.skip_kinks && !trusted(e)) {
                bool found = false;
                if (kinked(e)) {
                    for (double d : {4.0, 16.0}) {
                        e = estimate(tape, loss, x, f0, rounding, opt.eps / d, opt.richardson);
                        if ((found = trusted(e))) break;
                    }
                } else {
                    const Estimate big = estimate(tape, loss, x, f0, rounding, 2.0 * opt.eps, opt.richardson);
                    const Estimate small = estimate(tape, loss, x, f0, rounding, opt.eps / 4.0, opt.richardson);
                    const bool tb = trusted(big), ts = trusted(small);
                    if ((found = tb || ts)) e = tb && (!ts || big.error <= small.error) ? big : small;
                }
                if (!found) {
                    ++pr.skipped;
                    continue;
                }
            }
            const double num = e.numeric;
            const double abs_err = std::abs(ana - num);
            const double rel = abs_err / std::max({std::abs(ana), std::abs(num), floor});
            pr.max_abs_error = std::max(pr.max_abs_error, abs_err);
            if (rel > pr.max_rel_error || pr.checked == 0) {
                pr.max_rel_error = rel;
                pr.where = fmt::format("{}[{}, {}]", pr.name, i / cols, i % cols);
                pr.analytic = ana;
                pr.numeric = num;
            }
            ++pr.checked;
        }
        const std::size_t seen = pr.checked + pr.skipped;
        pr.ok = pr.max_rel_error <= opt.tolerance && (pr.checked > 0 || seen == 0) &&
                static_cast<double>(pr.skipped) <= opt.max_skipped * static_cast<double>(seen) + 1.0;
        rep.ok = rep.ok && pr.ok;
        rep.checked += pr.checked;
        rep.skipped += pr.skipped;
        rep.max_abs_error = std::max(rep.max_abs_error, pr.max_abs_error);
        if (pr.checked && (pr.max_rel_error > rep.max_rel_error || rep.where == "(nothing checked)")) {
            rep.max_rel_error = pr.max_rel_error;
            rep.where = pr.where;
            rep.analytic = pr.analytic;
            rep.numeric = pr.numeric;
        }
        rep.params.push_back(std::move(pr));
    }
    tape.clear();
    return rep;
}

// y = sum_ij x_ij R_ij, summed in double     dx += g R          x: (M x N) -> (1 x 1); R ~ U(-1, 1) from seed
Var random_projection(Var x, std::uint64_t seed) {
    Tape& t = kit::tape_of("random_projection", x);
    const Array& X = kit::val(t, x, "random_projection");
    Node& y = t.record("random_projection", {x}, [](Tape& t, Node& y) {
        const float g = y.grad(0, 0), *r = y.aux.data();
        kit::acc_map(t, y.in[0], [&](std::size_t k) { return g * r[k]; });
    });
    ensure_shape(y.aux, shape_of(X));
    Rng rng(seed);
    fill_uniform(y.aux, rng, -1.0f, 1.0f);
    double s = 0.0;
    for (std::size_t k = 0; k < X.size(); ++k) s += static_cast<double>(X.data()[k]) * y.aux.data()[k];
    y.f64 = s;
    kit::out(y, {1, 1})(0, 0) = static_cast<float>(s);
    return t.var(y);
}

}  // namespace xtgrad
