#include <xtgrad/layers/module.hpp>

namespace xtgrad {

std::vector<const Parameter*> Module::parameters() const {
    std::vector<Parameter*> v;
    const_cast<Module*>(this)->collect(v);  // collect only lists pointers; nothing is modified through them
    return {v.begin(), v.end()};
}

std::size_t Module::parameter_count() const {
    std::size_t n = 0;
    for (const Parameter* p : parameters()) n += p->size();
    return n;
}

void Module::zero_grad() {
    for (Parameter* p : parameters()) p->zero_grad();
}

Parameter* find_parameter(const std::vector<Parameter*>& params, const std::string& name) {
    for (Parameter* p : params)
        if (p->name == name) return p;
    return nullptr;
}

}  // namespace xtgrad
