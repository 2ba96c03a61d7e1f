// Fuzz target: the corpus reader. The input, cut at 0x1e bytes into train, valid and test (or taken whole as one
// character-level file), is written to a folder and read at both levels: a corpus whose ids all lie inside its
// vocabulary, with one <eos> per line at word level, or a FileError naming the file.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/lib/error.hpp>

#include "refused.hpp"

namespace {

const std::string& folder() {
    static const std::string dir = [] {
        char tmpl[] = "/tmp/xtgrad-fuzz-corpus-XXXXXX";
        const char* d = ::mkdtemp(tmpl);
        if (!d) std::abort();
        return std::string(d);
    }();
    return dir;
}

void check(const xtgrad::Corpus& c) {
    for (const xtgrad::Ids* split : {&c.train, &c.valid, &c.test})
        for (std::int32_t id : *split)
            if (id < 0 || static_cast<std::size_t>(id) >= c.vocab.size()) std::abort();
    if (c.vocab.size() == 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace xtgrad;
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::string& dir = folder();
    std::string parts[3];
    std::size_t at = 0;
    for (int k = 0; k < 3; ++k) {
        const std::size_t cut = k == 2 ? text.size() : std::min(text.find('\x1e', at), text.size());
        parts[k] = text.substr(at, cut - at);
        at = std::min(cut + 1, text.size());
    }
    const char* names[] = {"train.txt", "valid.txt", "test.txt"};
    for (int k = 0; k < 3; ++k) std::ofstream(dir + "/" + names[k], std::ios::binary) << parts[k];
    try {
        const Corpus c = load_word_corpus(dir);
        check(c);
        const std::int32_t eos = c.vocab.find("<eos>");
        if (eos < 0 || c.train.back() != eos) std::abort();  // every line ends in <eos>
        const Batched b = batchify(c.train, 2);
        Ids in, tg;
        if (b.steps > 1 && get_batch(b, 0, 3, in, tg) != std::min<std::size_t>(3, b.steps - 1)) std::abort();
    } catch (const FileError& e) {
        refused(e);
    }
    std::ofstream(dir + "/input.txt", std::ios::binary) << text;
    for (const char* n : names) std::remove((dir + "/" + n).c_str());
    try {
        const Corpus c = load_char_corpus(dir);
        check(c);
        if (c.train.size() + c.valid.size() < 20) std::abort();
    } catch (const FileError& e) {
        refused(e);
    }
    std::remove((dir + "/input.txt").c_str());
    return 0;
}
