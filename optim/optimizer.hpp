// Optimisers with PyTorch's documented update rules: SGD (momentum, Nesterov, weight decay), Adam, AdamW,
// Adagrad, RMSprop, and NT-ASGD. Each step is a flat loop over the parameters.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <xtgrad/lib/state_dict.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Base of the optimisers: the parameters, the learning rate, the step count and per-parameter state slots.
class Optimizer {
public:
    Optimizer(std::vector<Parameter*> params, double lr);
    virtual ~Optimizer() = default;
    // One update from the gradients accumulated in the parameters.
    virtual void step() = 0;
    // The optimiser's name ("sgd", "adam", ...).
    virtual std::string name() const = 0;
    // Sets every parameter's gradient to zero.
    void zero_grad();
    // step() then zero_grad(), in one pass over each parameter where the optimiser can (SGD): what a training loop
    // calls when it needs the gradients no more.
    virtual void step_and_zero_grad() {
        step();
        zero_grad();
    }
    // Updates done so far.
    std::size_t steps() const { return step_; }
    // Saves the step count, learning rate and every state slot under `prefix` (tensors `<prefix><slot>.<param>`).
    virtual void save_state(StateDict& sd, const std::string& prefix = "optim.") const;
    // Restores what save_state wrote; throws FileError naming a missing or mis-shaped tensor.
    virtual void load_state(const StateDict& sd, const std::string& prefix = "optim.");

    // Hooks a training loop calls, so that it needs to know no optimiser by name:
    // reports a validation loss; returns true when the report changed how the optimiser works (NT-ASGD starts
    // averaging).
    virtual bool observe(double val_loss) {
        (void)val_loss;
        return false;
    }
    // Whether evaluation should use other weights than the current iterate (NT-ASGD's running average).
    virtual bool has_eval_weights() const { return false; }
    // Swaps those weights into the parameters, and back on the next call.
    virtual void swap_eval_weights() {}
    // Whether the optimiser keeps its learning rate fixed (a schedule must not change it).
    virtual bool holds_lr() const { return false; }

    double lr;  // learning rate used by the next step (schedules set it)

protected:
    // Adds a state slot (one zero array per parameter, shaped like it); returns its index.
    std::size_t add_slot(const std::string& name);
    Array& slot(std::size_t k, std::size_t i) { return slots_[k][i]; }

    std::vector<Parameter*> params_;
    std::size_t step_ = 0;

private:
    std::vector<std::string> slot_names_;
    std::vector<std::vector<Array>> slots_;
};

// SGD, PyTorch's torch.optim.SGD: d = g + wd p; b = mu b + (1 - dampening) d (b = d at the first step);
// d = d + mu b (Nesterov) or b; p -= lr d.
class SGD : public Optimizer {
public:
    SGD(std::vector<Parameter*> params, double lr, double momentum = 0.0, double weight_decay = 0.0,
        bool nesterov = false, double dampening = 0.0);
    void step() override;
    void step_and_zero_grad() override;
    std::string name() const override { return "sgd"; }
    double momentum, weight_decay, dampening;
    bool nesterov;

private:
    void update(bool zero);
};

// Adam, PyTorch's torch.optim.Adam (weight decay added to the gradient, L2):
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
class Adam : public Optimizer {
public:
    Adam(std::vector<Parameter*> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
         double weight_decay = 0.0);
    void step() override;
    std::string name() const override { return "adam"; }
    double beta1, beta2, eps, weight_decay;

protected:
    void adam_update(double l2);
};

// AdamW, PyTorch's torch.optim.AdamW: decoupled decay p *= 1 - lr wd, then the Adam update without L2.
class AdamW : public Adam {
public:
    AdamW(std::vector<Parameter*> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
          double eps = 1e-8, double weight_decay = 1e-2);
    void step() override;
    std::string name() const override { return "adamw"; }
};

// Adagrad, PyTorch's torch.optim.Adagrad: clr = lr / (1 + (t-1) lr_decay); s += g^2; p -= clr g / (sqrt(s) + eps).
class Adagrad : public Optimizer {
public:
    Adagrad(std::vector<Parameter*> params, double lr = 1e-2, double lr_decay = 0.0, double weight_decay = 0.0,
            double initial_accumulator = 0.0, double eps = 1e-10);
    void step() override;
    std::string name() const override { return "adagrad"; }
    double lr_decay, weight_decay, eps;
};

// RMSprop, PyTorch's torch.optim.RMSprop: s = a s + (1-a) g^2; (centered: m = a m + (1-a) g, s - m^2);
// with momentum: b = mu b + g / (sqrt(.) + eps), p -= lr b; else p -= lr g / (sqrt(.) + eps).
class RMSprop : public Optimizer {
public:
    RMSprop(std::vector<Parameter*> params, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
            double weight_decay = 0.0, double momentum = 0.0, bool centered = false);
    void step() override;
    std::string name() const override { return "rmsprop"; }
    double alpha, eps, weight_decay, momentum;
    bool centered;
};

// NT-ASGD (Merity et al., AWD-LSTM): plain SGD until the validation loss fails to improve on the best of all
// but the last `nonmono` evaluations; from then on, also keeps the running average of the weights
// (ASGD with t0 = trigger step), which is what evaluation and the final model use.
class NTASGD : public Optimizer {
public:
    NTASGD(std::vector<Parameter*> params, double lr, std::size_t nonmono = 5, double weight_decay = 0.0);
    void step() override;
    std::string name() const override { return "ntasgd"; }
    // Reports a validation loss; returns true when this report triggers averaging.
    bool observe(double val_loss) override;
    // Whether averaging has started.
    bool averaging() const { return triggered_; }
    // Swaps the parameters with their running average (call again to swap back): evaluate with averaged weights.
    void swap_average();
    bool has_eval_weights() const override { return triggered_ && averaged_ > 0; }
    void swap_eval_weights() override { swap_average(); }
    bool holds_lr() const override { return true; }
    void save_state(StateDict& sd, const std::string& prefix = "optim.") const override;
    void load_state(const StateDict& sd, const std::string& prefix = "optim.") override;
    std::size_t nonmono;
    double weight_decay;

private:
    std::vector<double> history_;
    bool triggered_ = false;
    std::size_t averaged_ = 0;  // steps averaged so far
};

// Builds an optimiser by name: "sgd", "adam", "adamw", "adagrad", "rmsprop", "ntasgd" (momentum applies to SGD
// and RMSprop); throws ConfigError naming the accepted names otherwise.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Parameter*> params, double lr,
                                          double momentum = 0.0, double weight_decay = 0.0);

}  // namespace xtgrad
