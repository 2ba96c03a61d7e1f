#include <xtgrad/tape/context.hpp>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

MaskKey Ctx::mask_key(std::size_t batch) {
    const std::size_t global = global_batch ? global_batch : batch;
    if (batch == 0 || row_offset + batch > global)
        throw ConfigError(fmt::format("dropout: streams [{}, {}) of this process are not inside the batch of {} streams",
                                      row_offset, row_offset + batch, global));
    return MaskKey{rng.next_u64(), batch, row_offset, global};
}

}  // namespace xtgrad
