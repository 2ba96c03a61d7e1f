// Fuzz target: the safetensors reader. Any bytes either decode or give FileError; what decodes re-encodes and
// decodes to the same tensors and metadata.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <xtgrad/lib/error.hpp>

#include "refused.hpp"
#include <xtgrad/lib/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace xtgrad;
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    StateDict sd;
    try {
        sd = decode_safetensors(bytes, "fuzz");
    } catch (const FileError& e) {
        refused(e);
        return 0;
    }
    const StateDict back = decode_safetensors(encode_safetensors(sd), "re-encoded");
    if (back.metadata != sd.metadata || back.tensors.size() != sd.tensors.size()) std::abort();
    for (const auto& [name, e] : sd.tensors) {
        const StateDict::Entry& b = back.get(name);
        if (b.shape != e.shape || b.value.shape() != e.value.shape()) std::abort();
        for (std::size_t k = 0; k < e.value.size(); ++k)  // bit for bit: NaN payloads too
            if (std::memcmp(e.value.data() + k, b.value.data() + k, 4) != 0) std::abort();
    }
    return 0;
}
