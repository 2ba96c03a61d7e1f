#include <xtgrad/layers/module.hpp>

namespace xtgrad {

std::size_t Module::parameter_count() {
    std::size_t n = 0;
    for (Parameter* p : parameters()) n += p->size();
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
