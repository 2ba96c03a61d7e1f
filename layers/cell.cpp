#include <xtgrad/layers/cell.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

State::State(std::initializer_list<Var> parts) {
    for (const Var& v : parts) push_back(v);
}

void State::push_back(Var v) {
    if (n_ == kMaxParts) throw Error(fmt::format("State: a cell state has at most {} parts", kMaxParts));
    parts_[n_++] = v;
}

std::string CellOptions::get(const std::string& name, const std::string& def) const {
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
}

long CellOptions::get(const std::string& name, long def) const {
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || errno == ERANGE)
        throw ConfigError(fmt::format("cell option {}: '{}' is not an integer", name, it->second));
    return v;
}

double CellOptions::get(const std::string& name, double def) const {
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0' || !std::isfinite(v))
        throw ConfigError(fmt::format("cell option {}: '{}' is not a number", name, it->second));
    return v;
}

GateCell::GateCell(const CellSpec& spec, std::size_t gates, Rng& rng)
    : weight_ih(spec.name("weight_ih"), gates * spec.hidden, spec.input),
      weight_hh(spec.name("weight_hh"), gates * spec.hidden, spec.hidden),
      bias_ih(spec.name("bias_ih"), Array({1, gates * spec.hidden}), {gates * spec.hidden}),
      bias_hh(spec.name("bias_hh"), Array({1, gates * spec.hidden}), {gates * spec.hidden}),
      weight_drop(spec.weight_drop) {
    if (!(weight_drop >= 0.0f && weight_drop < 1.0f))
        throw ConfigError(fmt::format("{}: weight drop must be in [0, 1), got {}", weight_hh.name, weight_drop));
    const float k = 1.0f / std::sqrt(static_cast<float>(spec.hidden));
    for (Parameter* p : {&weight_ih, &weight_hh, &bias_ih, &bias_hh}) fill_uniform(p->value, rng, -k, k);
}

Window GateCell::project(Ctx& c, Var x) {
    Tape& t = c.tape;
    Window w{affine(x, t.param(weight_ih), t.param(bias_ih)), {}};
    if (c.training && weight_drop > 0.0f) w.extra[0] = dropout(t.param(weight_hh), weight_drop, c.rng);
    return w;
}

Var GateCell::recurrent(const Step& at, Var h) {
    Tape& t = at.tape();
    const Var W = at.window.extra[0].tape ? at.window.extra[0] : t.param(weight_hh);
    return affine(h, W, t.param(bias_hh));
}

void GateCell::collect(std::vector<Parameter*>& out) {
    out.insert(out.end(), {&weight_ih, &weight_hh, &bias_ih, &bias_hh});
}

}  // namespace xtgrad
