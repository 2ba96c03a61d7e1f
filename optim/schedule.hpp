// Learning-rate schedules: step, exponential, cosine, linear warm-up, and plateau annealing.
#pragma once

#include <memory>

#include <xtgrad/lib/state_dict.hpp>

namespace xtgrad {

// A learning rate as a function of the count t of steps (or epochs) done, from a base rate.
class Schedule {
public:
    virtual ~Schedule() = default;
    // The learning rate after t steps.
    virtual double at(std::size_t t) const = 0;
};

// base * gamma^floor(t / step_size)  (PyTorch's StepLR)
class StepLR : public Schedule {
public:
    StepLR(double base, std::size_t step_size, double gamma);
    double at(std::size_t t) const override;
    double base, gamma;
    std::size_t step_size;
};

// base * gamma^t  (PyTorch's ExponentialLR)
class ExponentialLR : public Schedule {
public:
    ExponentialLR(double base, double gamma) : base(base), gamma(gamma) {}
    double at(std::size_t t) const override;
    double base, gamma;
};

// eta_min + (base - eta_min) (1 + cos(pi t / t_max)) / 2 for t <= t_max, then eta_min  (PyTorch's
// CosineAnnealingLR, closed form, without restarts)
class CosineLR : public Schedule {
public:
    CosineLR(double base, std::size_t t_max, double eta_min = 0.0);
    double at(std::size_t t) const override;
    double base, eta_min;
    std::size_t t_max;
};

// Linear warm-up in front of another schedule: inner(t) * (t + 1) / warmup for t < warmup, then inner(t).
class WarmupLR : public Schedule {
public:
    WarmupLR(std::unique_ptr<Schedule> inner, std::size_t warmup);
    double at(std::size_t t) const override;
    std::unique_ptr<Schedule> inner;
    std::size_t warmup;
};

// The one interface a training loop drives a learning rate through: the rate for the next step, told of every
// step and every validation loss, with its state saved in resume points.
class LRSchedule {
public:
    virtual ~LRSchedule() = default;
    // The learning rate of the next step.
    virtual double lr() const = 0;
    // After each optimiser step.
    virtual void on_step() {}
    // After each evaluation on the validation split; returns true when the rate changed.
    virtual bool on_validation(double val_loss) {
        (void)val_loss;
        return false;
    }
    // Saves and restores the schedule's state under `prefix`; load throws FileError naming a missing key.
    virtual void save_state(StateDict& sd, const std::string& prefix) const = 0;
    virtual void load_state(const StateDict& sd, const std::string& prefix) = 0;
};

// A Schedule of the step count as an LRSchedule: lr() = schedule.at(steps taken).
class StepwiseLR : public LRSchedule {
public:
    explicit StepwiseLR(std::unique_ptr<Schedule> schedule) : schedule_(std::move(schedule)) {}
    double lr() const override { return schedule_->at(steps_); }
    void on_step() override { ++steps_; }
    void save_state(StateDict& sd, const std::string& prefix) const override;
    void load_state(const StateDict& sd, const std::string& prefix) override;

private:
    std::unique_ptr<Schedule> schedule_;
    std::size_t steps_ = 0;
};

// Cosine annealing over a run's progress, a fraction in [0, 1] its owner sets (of the steps planned, or of a time
// budget): eta_min + (base - eta_min) (1 + cos(pi f)) / 2.
class CosineProgressLR : public LRSchedule {
public:
    CosineProgressLR(double base, double eta_min = 0.0);
    double lr() const override;
    // Sets the progress f (clamped to [0, 1]).
    void set_progress(double f);
    double progress() const { return f_; }
    void save_state(StateDict& sd, const std::string& prefix) const override;
    void load_state(const StateDict& sd, const std::string& prefix) override;

private:
    double base_, eta_min_, f_ = 0.0;
};

// Plateau annealing, the classic language-model recipe (PyTorch's ReduceLROnPlateau, mode "min", relative
// threshold): the rate is multiplied by `factor` when the validation loss has not improved for more than
// `patience` reports. With factor 0.25 and patience 0 it is the word-language-model example's "lr /= 4".
class PlateauLR : public LRSchedule {
public:
    PlateauLR(double lr, double factor = 0.25, std::size_t patience = 0, double threshold = 0.0, double min_lr = 0.0);
    // Reports a validation loss; returns true when the learning rate was reduced.
    bool step(double val_loss);
    bool on_validation(double val_loss) override { return step(val_loss); }
    double lr() const override { return lr_; }
    // Best loss reported so far (+inf before any).
    double best() const { return best_; }
    void save_state(StateDict& sd, const std::string& prefix = "plateau.") const override;
    void load_state(const StateDict& sd, const std::string& prefix = "plateau.") override;

private:
    double lr_, factor_, threshold_, min_lr_;
    std::size_t patience_, bad_ = 0;
    double best_;
};

}  // namespace xtgrad
