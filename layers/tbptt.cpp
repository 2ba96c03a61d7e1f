#include <xtgrad/layers/tbptt.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

TbpttResult truncated_bptt(Tape& tape, std::size_t t_begin, std::size_t t_end, std::size_t window,
                           const WindowHooks& hooks, std::size_t first_index) {
    if (window == 0 && !hooks.length) throw ConfigError("truncated_bptt: the window must be at least 1 step");
    if (!hooks.loss) throw ConfigError("truncated_bptt: no loss hook");
    TbpttResult r;
    double total = 0.0;
    std::size_t steps = 0;
    WindowInfo w;
    w.index = first_index;
    for (w.t0 = t_begin; w.t0 < t_end; w.t0 = w.t1, ++w.index) {
        const std::size_t len = hooks.length ? hooks.length(w.t0) : window;
        if (len == 0) throw ConfigError(fmt::format("truncated_bptt: a window of 0 steps at step {}", w.t0));
        w.t1 = std::min(t_end, w.t0 + len);
        tape.clear();
        const Var l = hooks.loss(tape, w);
        w.loss = hooks.global_loss ? hooks.global_loss(l.value()(0, 0)) : l.value()(0, 0);
        r.next = w.t1;
        if (!std::isfinite(w.loss)) {
            if (hooks.non_finite && hooks.non_finite(w)) continue;
            r.stopped = r.non_finite = true;
            break;
        }
        tape.backward(l);
        total += static_cast<double>(w.loss) * static_cast<double>(w.t1 - w.t0);
        steps += w.t1 - w.t0;
        ++r.windows;
        if (hooks.update && !hooks.update(w)) {
            r.stopped = w.t1 < t_end;
            break;
        }
    }
    tape.clear();
    r.mean_loss = steps ? total / static_cast<double>(steps) : 0.0;
    if (!r.stopped) r.next = std::max(r.next, t_end);
    return r;
}

double truncated_bptt(Tape& tape, std::size_t length, std::size_t window, const WindowLoss& loss,
                      const WindowUpdate& update) {
    WindowHooks h;
    h.loss = [&](Tape& t, const WindowInfo& w) { return loss(t, w.t0, w.t1); };
    if (update) h.update = [&](const WindowInfo& w) {
        update(w.index, w.loss);
        return true;
    };
    return truncated_bptt(tape, 0, length, window, h).mean_loss;
}

}  // namespace xtgrad
