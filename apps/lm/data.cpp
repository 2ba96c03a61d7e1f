#include <xtgrad/apps/lm/data.hpp>

#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>

namespace xtgrad {

std::int32_t Vocab::add(const std::string& token) {
    auto it = ids_.find(token);
    if (it != ids_.end()) return it->second;
    const auto id = static_cast<std::int32_t>(tokens_.size());
    tokens_.push_back(token);
    ids_.emplace(token, id);
    return id;
}

std::int32_t Vocab::find(const std::string& token) const {
    auto it = ids_.find(token);
    return it == ids_.end() ? -1 : it->second;
}

const std::string& Vocab::token(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size())
        throw IndexError(fmt::format("vocabulary: id {} is outside [0, {})", id, tokens_.size()));
    return tokens_[static_cast<std::size_t>(id)];
}

Vocab Vocab::from_tokens(const std::vector<std::string>& tokens) {
    Vocab v;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (v.find(tokens[i]) >= 0)
            throw ConfigError(fmt::format("vocabulary: token '{}' appears twice (at {} and {})", tokens[i],
                                          v.find(tokens[i]), i));
        v.add(tokens[i]);
    }
    return v;
}

namespace {

// Decodes one code point at s[i]; returns its length, 0 if invalid.
std::size_t utf8_len(const std::string& s, std::size_t i, std::uint32_t& cp) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    if (c < 0x80) {
        cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (d & 0x3F);
    }
    static const std::uint32_t min_for[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
    return n;
}

// Python's str.isspace() for the code points it accepts.
bool is_space(std::uint32_t cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_split(const std::string& path) {
    if (!exists(path)) throw FileError(fmt::format("{}: file not found", path));
    std::string text = read_file(path);
    if (text.empty()) throw FileError(fmt::format("{}: file is empty", path));
    check_utf8(text, path);
    return text;
}

// Lines as Python's universal newlines give them: split at \n, \r\n or \r; a final line without a newline counts.
template <class F>
void for_each_line(const std::string& text, F f) {
    std::size_t start = 0, i = 0;
    while (i < text.size()) {
        if (text[i] == '\n' || text[i] == '\r') {
            f(text.substr(start, i - start));
            if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            start = ++i;
        } else {
            ++i;
        }
    }
    if (start < text.size()) f(text.substr(start));
}

Ids tokenize_words(const std::string& text, Vocab& vocab) {
    Ids ids;
    for_each_line(text, [&](const std::string& line) {
        for (const std::string& w : split_words(line)) ids.push_back(vocab.add(w));
        ids.push_back(vocab.add("<eos>"));
    });
    return ids;
}

Ids tokenize_chars(const std::string& text, Vocab& vocab) {
    Ids ids;
    for (const std::string& ch : split_chars(text)) ids.push_back(vocab.add(ch));  // valid: checked on read
    return ids;
}

}  // namespace

void check_utf8(const std::string& text, const std::string& name) {
    std::size_t line = 1;
    std::uint32_t cp;
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = utf8_len(text, i, cp);
        if (n == 0)
            throw FileError(fmt::format("{}:{}: invalid UTF-8 at byte {} (0x{:02x})", name, line, i,
                                        static_cast<unsigned>(static_cast<unsigned char>(text[i]))));
        line += text[i] == '\n';
        i += n;
    }
}

std::vector<std::string> split_chars(const std::string& text) {
    std::vector<std::string> out;
    std::uint32_t cp;
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = std::max<std::size_t>(1, utf8_len(text, i, cp));  // an invalid byte stands alone
        out.push_back(text.substr(i, n));
        i += n;
    }
    return out;
}

std::vector<std::string> split_words(const std::string& line) {
    std::vector<std::string> out;
    std::size_t i = 0, start = std::string::npos;
    std::uint32_t cp;
    while (i < line.size()) {
        std::size_t n = utf8_len(line, i, cp);
        if (n == 0) n = 1, cp = 0xFFFD;  // not reached for checked text
        if (is_space(cp)) {
            if (start != std::string::npos) out.push_back(line.substr(start, i - start));
            start = std::string::npos;
        } else if (start == std::string::npos) {
            start = i;
        }
        i += n;
    }
    if (start != std::string::npos) out.push_back(line.substr(start));
    return out;
}

Corpus load_word_corpus(const std::string& dir) {
    if (!is_dir(dir)) throw FileError(fmt::format("{}: data directory not found", dir));
    for (const char* split : {"train", "valid", "test"})
        if (!exists(dir + "/" + split + ".txt"))
            throw FileError(fmt::format("{}: needs train.txt, valid.txt and test.txt; {}.txt is missing", dir, split));
    Corpus c;
    c.level = "word";
    c.train = tokenize_words(read_split(dir + "/train.txt"), c.vocab);
    c.valid = tokenize_words(read_split(dir + "/valid.txt"), c.vocab);
    c.test = tokenize_words(read_split(dir + "/test.txt"), c.vocab);
    return c;
}

Corpus load_char_corpus(const std::string& path) {
    Corpus c;
    c.level = "char";
    if (is_dir(path) && exists(path + "/train.txt")) {
        for (const char* split : {"valid", "test"})
            if (!exists(path + "/" + split + ".txt"))
                throw FileError(fmt::format("{}: has train.txt but no {}.txt", path, split));
        c.train = tokenize_chars(read_split(path + "/train.txt"), c.vocab);
        c.valid = tokenize_chars(read_split(path + "/valid.txt"), c.vocab);
        c.test = tokenize_chars(read_split(path + "/test.txt"), c.vocab);
        return c;
    }
    const std::string file = is_dir(path) ? path + "/input.txt" : path;
    if (is_dir(path) && !exists(file))
        throw FileError(fmt::format("{}: needs input.txt (one text, split 90/10) or train.txt, valid.txt, test.txt", path));
    const Ids all = tokenize_chars(read_split(file), c.vocab);
    if (all.size() < 20) throw FileError(fmt::format("{}: only {} characters, too short to split 90/10", file, all.size()));
    const std::size_t cut = all.size() * 9 / 10;
    c.train.assign(all.begin(), all.begin() + static_cast<long>(cut));
    c.valid.assign(all.begin() + static_cast<long>(cut), all.end());
    c.test = c.valid;
    c.test_name = "valid";
    return c;
}

Batched batchify(const Ids& ids, std::size_t batch) {
    if (batch == 0) throw ConfigError("batchify: batch size must be positive");
    Batched b;
    b.batch = batch;
    b.steps = ids.size() / batch;
    b.data.resize(b.steps * batch);
    for (std::size_t col = 0; col < batch; ++col)
        for (std::size_t t = 0; t < b.steps; ++t) b.data[t * batch + col] = ids[col * b.steps + t];
    return b;
}

std::size_t get_batch(const Batched& src, std::size_t i, std::size_t bptt, Ids& inputs, Ids& targets) {
    if (i + 1 >= src.steps) throw IndexError(fmt::format("get_batch: row {} leaves no target in {} steps", i, src.steps));
    const std::size_t n = std::min(bptt, src.steps - 1 - i);
    inputs.assign(src.data.begin() + static_cast<long>(i * src.batch), src.data.begin() + static_cast<long>((i + n) * src.batch));
    targets.assign(src.data.begin() + static_cast<long>((i + 1) * src.batch),
                   src.data.begin() + static_cast<long>((i + 1 + n) * src.batch));
    return n;
}

std::string find_data(const std::string& given, const std::string& name) {
    if (!given.empty()) return given;
    std::vector<std::string> candidates = {"../shared/data/" + name};
    if (const char* env = std::getenv("XTGRAD_DATA")) candidates.insert(candidates.begin(), std::string(env) + "/" + name);
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        std::string dir(exe, static_cast<std::size_t>(n));
        dir = dir.substr(0, dir.find_last_of('/'));
        candidates.push_back(dir + "/../../../shared/data/" + name);  // build/apps/xtgrad-lm next to ../shared
        candidates.push_back(dir + "/../../shared/data/" + name);     // PREFIX/bin/xtgrad-lm with PREFIX next to shared
        candidates.push_back(dir + "/../share/xtgrad/data/" + name);  // data installed with the program
    }
    for (const std::string& c : candidates)
        if (is_dir(c)) return c;
    throw ConfigError(fmt::format(
        "no --data given and {} was not found (looked in {}; or set XTGRAD_DATA to the folder holding {}).\n"
        "Get WikiText-2 (the tokenised version with <unk>, as in the PyTorch word_language_model example: "
        "word_language_model/data/wikitext-2/{{train,valid,test}}.txt of the pytorch/examples repository) or Tiny "
        "Shakespeare (karpathy/char-rnn data/tinyshakespeare/input.txt) and pass --data DIR",
        name, fmt::join(candidates, ", "), name));
}

Corpus load_corpus(const std::string& data, const std::string& level) {
    if (level == "word") return load_word_corpus(data);
    if (level == "char") return load_char_corpus(data);
    throw ConfigError(fmt::format("--level must be word or char, got '{}'", level));
}

std::vector<std::string> corpus_files(const std::string& data, const std::string& level) {
    if (level == "word" || (is_dir(data) && exists(data + "/train.txt")))
        return {data + "/train.txt", data + "/valid.txt", data + "/test.txt"};
    return {is_dir(data) ? data + "/input.txt" : data};
}

}  // namespace xtgrad
