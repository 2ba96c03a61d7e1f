// Dropout layers: standard, and variational (locked) dropout that shares one mask across a window's steps.
#pragma once

#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Inverted dropout with rate p when training; the identity when not (or when p = 0).
class Dropout {
public:
    explicit Dropout(float p);
    // y = x * mask / (1 - p) when training, else x
    Var operator()(Var x, Rng& rng, bool training) const;
    float rate() const { return p_; }

private:
    float p_;
};

// Variational ("locked") dropout: x is a window of T steps stacked time-major, (T*batch x H); one (batch x H)
// mask is drawn per call and applied to every step, as in AWD-LSTM.
class LockedDropout {
public:
    explicit LockedDropout(float p);
    // y[t*batch + b, :] = x[t*batch + b, :] * mask[b, :] when training, else x
    Var operator()(Var x, std::size_t batch, Rng& rng, bool training);
    float rate() const { return p_; }

private:
    float p_;
    Array mask_;  // (T*batch x H), the drawn (batch x H) mask tiled over steps
};

}  // namespace xtgrad
