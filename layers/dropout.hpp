// Dropout layers: standard, and variational (locked) dropout that shares one mask across a window's steps.
#pragma once

#include <xtgrad/tape/context.hpp>

namespace xtgrad {

// Inverted dropout with rate p when training; the identity when not (or when p = 0).
class Dropout {
public:
    explicit Dropout(float p);
    // y = x * mask / (1 - p) when c.training, else x; the mask draws from c.rng
    Var operator()(Ctx& c, Var x) const;
    float rate() const { return p_; }

private:
    float p_;
};

// Variational ("locked") dropout: x is a window of T steps stacked time-major, (T*batch x H); one (batch x H)
// mask is drawn per call and applied to every step, as in AWD-LSTM.
class LockedDropout {
public:
    explicit LockedDropout(float p);
    // y[t*batch + b, :] = x[t*batch + b, :] * mask[b, :] when c.training, else x
    Var operator()(Ctx& c, Var x, std::size_t batch) const;
    float rate() const { return p_; }

private:
    float p_;
};

}  // namespace xtgrad
