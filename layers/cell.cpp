#include "layers/cell.hpp"

#include <cmath>

namespace xtgrad {

void init_recurrent_params(Parameter& wih, Parameter& whh, Parameter& bih, Parameter& bhh, const std::string& prefix,
                           const std::string& suffix, std::size_t gates, std::size_t in, std::size_t H, Rng& rng) {
    wih = Parameter(prefix + ".weight_ih" + suffix, Array({gates * H, in}));
    whh = Parameter(prefix + ".weight_hh" + suffix, Array({gates * H, H}));
    bih = Parameter(prefix + ".bias_ih" + suffix, Array({1, gates * H}), {gates * H});
    bhh = Parameter(prefix + ".bias_hh" + suffix, Array({1, gates * H}), {gates * H});
    const float k = 1.0f / std::sqrt(static_cast<float>(H));
    for (Parameter* p : {&wih, &whh, &bih, &bhh}) fill_uniform(p->value, rng, -k, k);
}

}  // namespace xtgrad
