#include <xtgrad/layers/cell.hpp>

#include <cmath>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

GateCell::GateCell(const std::string& prefix, const std::string& suffix, std::size_t gates, std::size_t in,
                   std::size_t H, Rng& rng)
    : weight_ih(prefix + ".weight_ih" + suffix, Array({gates * H, in})),
      weight_hh(prefix + ".weight_hh" + suffix, Array({gates * H, H})),
      bias_ih(prefix + ".bias_ih" + suffix, Array({1, gates * H}), {gates * H}),
      bias_hh(prefix + ".bias_hh" + suffix, Array({1, gates * H}), {gates * H}) {
    const float k = 1.0f / std::sqrt(static_cast<float>(H));
    for (Parameter* p : {&weight_ih, &weight_hh, &bias_ih, &bias_hh}) fill_uniform(p->value, rng, -k, k);
}

Var GateCell::project(Var x) { return affine(x, x.tape->param(weight_ih), x.tape->param(bias_ih)); }

Var GateCell::recurrent(Var h) { return affine(h, h.tape->param(weight_hh), h.tape->param(bias_hh)); }

void GateCell::collect(std::vector<Parameter*>& out) {
    out.insert(out.end(), {&weight_ih, &weight_hh, &bias_ih, &bias_hh});
}

}  // namespace xtgrad
