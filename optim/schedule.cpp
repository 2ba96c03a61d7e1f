#include <xtgrad/optim/schedule.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

StepLR::StepLR(double base_, std::size_t step_size_, double gamma_) : base(base_), gamma(gamma_), step_size(step_size_) {
    if (step_size == 0) throw ConfigError("StepLR: step_size must be at least 1");
}

double StepLR::at(std::size_t t) const { return base * std::pow(gamma, static_cast<double>(t / step_size)); }

double ExponentialLR::at(std::size_t t) const { return base * std::pow(gamma, static_cast<double>(t)); }

CosineLR::CosineLR(double base_, std::size_t t_max_, double eta_min_) : base(base_), eta_min(eta_min_), t_max(t_max_) {
    if (t_max == 0) throw ConfigError("CosineLR: t_max must be at least 1");
}

double CosineLR::at(std::size_t t) const {
    if (t >= t_max) return eta_min;
    const double pi = 3.14159265358979323846;
    return eta_min + (base - eta_min) * (1.0 + std::cos(pi * static_cast<double>(t) / static_cast<double>(t_max))) / 2.0;
}

WarmupLR::WarmupLR(std::unique_ptr<Schedule> inner_, std::size_t warmup_) : inner(std::move(inner_)), warmup(warmup_) {
    if (!inner) throw ConfigError("WarmupLR: needs a schedule to warm up into");
}

double WarmupLR::at(std::size_t t) const {
    const double r = inner->at(t);
    return t < warmup ? r * static_cast<double>(t + 1) / static_cast<double>(warmup) : r;
}

PlateauLR::PlateauLR(double lr, double factor, std::size_t patience, double threshold, double min_lr)
    : lr_(lr), factor_(factor), threshold_(threshold), min_lr_(min_lr), patience_(patience),
      best_(std::numeric_limits<double>::infinity()) {
    if (!(factor > 0.0 && factor < 1.0)) throw ConfigError(fmt::format("PlateauLR: factor must be in (0, 1), got {}", factor));
}

bool PlateauLR::step(double val_loss) {
    if (val_loss < best_ * (1.0 - threshold_)) {
        best_ = val_loss;
        bad_ = 0;
        return false;
    }
    if (++bad_ <= patience_) return false;
    bad_ = 0;
    const double next = std::max(lr_ * factor_, min_lr_);
    const bool reduced = next < lr_;
    lr_ = next;
    return reduced;
}

void StepwiseLR::save_state(StateDict& sd, const std::string& prefix) const {
    sd.put_int(prefix + "steps", static_cast<std::int64_t>(steps_));
}

void StepwiseLR::load_state(const StateDict& sd, const std::string& prefix) {
    steps_ = static_cast<std::size_t>(MetaReader(sd, "schedule state").count(prefix + "steps", 0, 1ull << 50));
}

CosineProgressLR::CosineProgressLR(double base, double eta_min) : base_(base), eta_min_(eta_min) {
    if (!(base >= 0.0) || !(eta_min >= 0.0) || eta_min > base)
        throw ConfigError(fmt::format("CosineProgressLR: need 0 <= eta_min <= base, got {} and {}", eta_min, base));
}

double CosineProgressLR::lr() const { return eta_min_ + (base_ - eta_min_) * (1.0 + std::cos(M_PI * f_)) / 2.0; }

void CosineProgressLR::set_progress(double f) { f_ = std::clamp(f, 0.0, 1.0); }

void CosineProgressLR::save_state(StateDict& sd, const std::string& prefix) const { sd.put_double(prefix + "progress", f_); }

void CosineProgressLR::load_state(const StateDict& sd, const std::string& prefix) {
    f_ = MetaReader(sd, "schedule state").real(prefix + "progress", 0.0, 1.0);
}

void PlateauLR::save_state(StateDict& sd, const std::string& prefix) const {
    sd.put_double(prefix + "lr", lr_);
    sd.put_double(prefix + "best", best_);
    sd.put_int(prefix + "bad", static_cast<std::int64_t>(bad_));
}

void PlateauLR::load_state(const StateDict& sd, const std::string& prefix) {
    const MetaReader m(sd, "schedule state");
    lr_ = m.real(prefix + "lr", 0.0, 1e6);  // the command line's bound
    // the best loss so far: infinite until the first validation (put_double writes "inf")
    best_ = m.text(prefix + "best", 64) == "inf" ? std::numeric_limits<double>::infinity() : m.real(prefix + "best", -1e300, 1e300);
    bad_ = static_cast<std::size_t>(m.count(prefix + "bad", 0, 1ull << 50));
}

}  // namespace xtgrad
