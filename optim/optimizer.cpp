#include <xtgrad/optim/optimizer.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

namespace {
constexpr std::size_t kParallelGrain = std::size_t{1} << 16;  // entries per thread at least

void check_nonneg(const char* opt, const char* what, double v) {
    if (!(v >= 0.0) || !std::isfinite(v)) throw ConfigError(fmt::format("{}: {} must be >= 0, got {}", opt, what, v));
}
}  // namespace

// ============================================================ base

Optimizer::Optimizer(std::vector<Parameter*> params, double lr_) : lr(lr_), params_(std::move(params)) {
    check_nonneg("optimizer", "learning rate", lr_);
}

void Optimizer::zero_grad() {
    for (Parameter* p : params_) p->zero_grad();
}

std::size_t Optimizer::add_slot(const std::string& name) {
    slot_names_.push_back(name);
    slots_.emplace_back();
    for (Parameter* p : params_) slots_.back().push_back(Array(p->value.shape(), 0.0f));
    return slots_.size() - 1;
}

void Optimizer::save_state(StateDict& sd, const std::string& prefix) const {
    sd.metadata[prefix + "name"] = name();
    sd.put_int(prefix + "step", static_cast<std::int64_t>(step_));
    sd.put_double(prefix + "lr", lr);
    for (std::size_t k = 0; k < slots_.size(); ++k)
        for (std::size_t i = 0; i < params_.size(); ++i)
            sd.put(prefix + slot_names_[k] + "." + params_[i]->name, slots_[k][i]);
}

void Optimizer::load_state(const StateDict& sd, const std::string& prefix) {
    const MetaReader m(sd, "optimizer state");
    const std::string saved = m.text(prefix + "name", 64);
    if (saved != name())
        throw FileError(fmt::format("optimizer state: saved by '{}', cannot resume '{}'", saved, name()));
    step_ = static_cast<std::size_t>(m.count(prefix + "step", 0, 1ull << 50));
    lr = m.real(prefix + "lr", 0.0, 1e6);  // the command line's bound
    for (std::size_t k = 0; k < slots_.size(); ++k)
        for (std::size_t i = 0; i < params_.size(); ++i)
            sd.load_into(prefix + slot_names_[k] + "." + params_[i]->name, slots_[k][i], "optimizer state");
}

// ============================================================ SGD

SGD::SGD(std::vector<Parameter*> params, double lr_, double momentum_, double weight_decay_, bool nesterov_,
         double dampening_)
    : Optimizer(std::move(params), lr_),
      momentum(momentum_),
      weight_decay(weight_decay_),
      dampening(dampening_),
      nesterov(nesterov_) {
    check_nonneg("sgd", "momentum", momentum);
    check_nonneg("sgd", "weight decay", weight_decay);
    if (nesterov && (momentum <= 0.0 || dampening != 0.0))
        throw ConfigError("sgd: Nesterov momentum needs momentum > 0 and dampening 0");
    if (momentum > 0.0) add_slot("momentum_buffer");
}

void SGD::step() { update(false); }

void SGD::step_and_zero_grad() { update(true); }

void SGD::update(bool zero) {
    const auto lr_f = static_cast<float>(lr), wd = static_cast<float>(weight_decay), mu = static_cast<float>(momentum),
               damp = 1.0f - static_cast<float>(dampening);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        Parameter& P = *params_[i];
        float* p = P.value.data();
        float* g = P.grad.data();
        float* b = momentum > 0.0 ? slot(0, i).data() : nullptr;
        const auto part = [&](std::size_t off, std::size_t n) {
            if (!b && wd == 0.0f) {  // p -= lr g, vectorised
                vmath::axpy(-lr_f, g + off, p + off, n);
            } else {
                for (std::size_t k = off; k < off + n; ++k) {
                    float d = g[k] + wd * p[k];
                    if (b) {
                        b[k] = step_ == 0 ? d : mu * b[k] + damp * d;
                        d = nesterov ? d + mu * b[k] : b[k];
                    }
                    p[k] -= lr_f * d;
                }
            }
            if (zero) std::fill(g + off, g + off + n, 0.0f);
        };
        const auto span = [&](std::size_t off, std::size_t n) {
            parallel_for(n, kParallelGrain, [&](std::size_t b0, std::size_t b1) { part(off + b0, b1 - b0); });
        };
        if (!b && wd == 0.0f)
            P.for_each_live_grad(span);  // a zero gradient row leaves its weights as they are
        else
            span(0, P.size());
        if (zero) P.grad_zeroed();
    }
    ++step_;
}

// ============================================================ Adam, AdamW

Adam::Adam(std::vector<Parameter*> params, double lr_, double beta1_, double beta2_, double eps_, double weight_decay_)
    : Optimizer(std::move(params), lr_), beta1(beta1_), beta2(beta2_), eps(eps_), weight_decay(weight_decay_) {
    if (!(beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0))
        throw ConfigError(fmt::format("adam: betas must be in [0, 1), got ({}, {})", beta1, beta2));
    check_nonneg("adam", "eps", eps);
    check_nonneg("adam", "weight decay", weight_decay);
    add_slot("exp_avg");
    add_slot("exp_avg_sq");
}

void Adam::adam_update(double l2) {
    ++step_;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step_));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step_));
    const auto step_size = static_cast<float>(lr / bc1), bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const auto b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2), e = static_cast<float>(eps),
               wd = static_cast<float>(l2);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        float* p = params_[i]->value.data();
        const float* g = params_[i]->grad.data();
        float *m = slot(0, i).data(), *v = slot(1, i).data();
        const std::size_t n = params_[i]->size();
        for (std::size_t k = 0; k < n; ++k) {
            const float d = g[k] + wd * p[k];
            m[k] = b1 * m[k] + (1.0f - b1) * d;
            v[k] = b2 * v[k] + (1.0f - b2) * d * d;
            p[k] -= step_size * m[k] / (std::sqrt(v[k]) / bc2_sqrt + e);
        }
    }
}

void Adam::step() { adam_update(weight_decay); }

AdamW::AdamW(std::vector<Parameter*> params, double lr_, double beta1_, double beta2_, double eps_,
             double weight_decay_)
    : Adam(std::move(params), lr_, beta1_, beta2_, eps_, weight_decay_) {}

void AdamW::step() {
    const auto decay = static_cast<float>(1.0 - lr * weight_decay);
    for (Parameter* p : params_)
        for (float& w : p->value) w *= decay;
    adam_update(0.0);
}

// ============================================================ Adagrad

Adagrad::Adagrad(std::vector<Parameter*> params, double lr_, double lr_decay_, double weight_decay_,
                 double initial_accumulator, double eps_)
    : Optimizer(std::move(params), lr_), lr_decay(lr_decay_), weight_decay(weight_decay_), eps(eps_) {
    check_nonneg("adagrad", "lr_decay", lr_decay);
    check_nonneg("adagrad", "weight decay", weight_decay);
    check_nonneg("adagrad", "initial accumulator", initial_accumulator);
    add_slot("sum");
    for (std::size_t i = 0; i < params_.size(); ++i) slot(0, i).fill(static_cast<float>(initial_accumulator));
}

void Adagrad::step() {
    ++step_;
    const auto clr = static_cast<float>(lr / (1.0 + static_cast<double>(step_ - 1) * lr_decay));
    const auto wd = static_cast<float>(weight_decay), e = static_cast<float>(eps);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        float* p = params_[i]->value.data();
        const float* g = params_[i]->grad.data();
        float* s = slot(0, i).data();
        for (std::size_t k = 0; k < params_[i]->size(); ++k) {
            const float d = g[k] + wd * p[k];
            s[k] += d * d;
            p[k] -= clr * d / (std::sqrt(s[k]) + e);
        }
    }
}

// ============================================================ RMSprop

RMSprop::RMSprop(std::vector<Parameter*> params, double lr_, double alpha_, double eps_, double weight_decay_,
                 double momentum_, bool centered_)
    : Optimizer(std::move(params), lr_),
      alpha(alpha_),
      eps(eps_),
      weight_decay(weight_decay_),
      momentum(momentum_),
      centered(centered_) {
    if (!(alpha >= 0.0 && alpha <= 1.0)) throw ConfigError(fmt::format("rmsprop: alpha must be in [0, 1], got {}", alpha));
    check_nonneg("rmsprop", "momentum", momentum);
    check_nonneg("rmsprop", "weight decay", weight_decay);
    add_slot("square_avg");
    add_slot("momentum_buffer");
    add_slot("grad_avg");
}

void RMSprop::step() {
    const auto a = static_cast<float>(alpha), e = static_cast<float>(eps), wd = static_cast<float>(weight_decay),
               mu = static_cast<float>(momentum), lr_f = static_cast<float>(lr);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        float* p = params_[i]->value.data();
        const float* g = params_[i]->grad.data();
        float *sq = slot(0, i).data(), *buf = slot(1, i).data(), *ga = slot(2, i).data();
        for (std::size_t k = 0; k < params_[i]->size(); ++k) {
            const float d = g[k] + wd * p[k];
            sq[k] = a * sq[k] + (1.0f - a) * d * d;
            float avg;
            if (centered) {
                ga[k] = a * ga[k] + (1.0f - a) * d;
                avg = std::sqrt(sq[k] - ga[k] * ga[k]) + e;
            } else {
                avg = std::sqrt(sq[k]) + e;
            }
            if (momentum > 0.0) {
                buf[k] = mu * buf[k] + d / avg;
                p[k] -= lr_f * buf[k];
            } else {
                p[k] -= lr_f * d / avg;
            }
        }
    }
    ++step_;
}

// ============================================================ NT-ASGD

NTASGD::NTASGD(std::vector<Parameter*> params, double lr_, std::size_t nonmono_, double weight_decay_)
    : Optimizer(std::move(params), lr_), nonmono(nonmono_), weight_decay(weight_decay_) {
    check_nonneg("ntasgd", "weight decay", weight_decay);
    add_slot("ax");
}

void NTASGD::step() {
    const auto lr_f = static_cast<float>(lr), wd = static_cast<float>(weight_decay);
    if (triggered_) ++averaged_;
    const float mu = triggered_ ? 1.0f / static_cast<float>(averaged_) : 0.0f;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        float* p = params_[i]->value.data();
        const float* g = params_[i]->grad.data();
        float* ax = slot(0, i).data();
        for (std::size_t k = 0; k < params_[i]->size(); ++k) {
            p[k] -= lr_f * (g[k] + wd * p[k]);
            if (triggered_) ax[k] += mu * (p[k] - ax[k]);
        }
    }
    ++step_;
}

bool NTASGD::observe(double val_loss) {
    bool trigger = false;
    if (!triggered_ && history_.size() > nonmono) {
        const double best = *std::min_element(history_.begin(), history_.end() - static_cast<long>(nonmono));
        trigger = val_loss > best;
    }
    history_.push_back(val_loss);
    if (trigger) {
        triggered_ = true;
        averaged_ = 0;
    }
    return trigger;
}

void NTASGD::swap_average() {
    if (!triggered_ || averaged_ == 0) return;
    for (std::size_t i = 0; i < params_.size(); ++i) std::swap_ranges(params_[i]->value.begin(), params_[i]->value.end(), slot(0, i).begin());
}

void NTASGD::save_state(StateDict& sd, const std::string& prefix) const {
    Optimizer::save_state(sd, prefix);
    sd.put_int(prefix + "triggered", triggered_);
    sd.put_int(prefix + "averaged", static_cast<std::int64_t>(averaged_));
    std::string h;
    for (double v : history_) h += fmt::format("{}{:.17g}", h.empty() ? "" : ",", v);
    sd.metadata[prefix + "history"] = h;
}

void NTASGD::load_state(const StateDict& sd, const std::string& prefix) {
    Optimizer::load_state(sd, prefix);
    const MetaReader m(sd, "optimizer state");
    triggered_ = m.flag(prefix + "triggered");
    averaged_ = static_cast<std::size_t>(m.count(prefix + "averaged", 0, step_));  // at most the steps taken
    history_ = m.reals(prefix + "history", -1e300, 1e300, 1u << 20);  // one validation loss per epoch
}

// ============================================================ factory

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Parameter*> params, double lr,
                                          double momentum, double weight_decay) {
    if (name == "sgd") return std::make_unique<SGD>(std::move(params), lr, momentum, weight_decay);
    if (name == "adam") return std::make_unique<Adam>(std::move(params), lr, 0.9, 0.999, 1e-8, weight_decay);
    if (name == "adamw") return std::make_unique<AdamW>(std::move(params), lr, 0.9, 0.999, 1e-8, weight_decay);
    if (name == "adagrad") return std::make_unique<Adagrad>(std::move(params), lr, 0.0, weight_decay);
    if (name == "rmsprop") return std::make_unique<RMSprop>(std::move(params), lr, 0.99, 1e-8, weight_decay, momentum);
    if (name == "ntasgd") return std::make_unique<NTASGD>(std::move(params), lr, 5, weight_decay);
    throw ConfigError(fmt::format("unknown optimizer '{}': use sgd, adam, adamw, adagrad, rmsprop or ntasgd", name));
}

}  // namespace xtgrad
