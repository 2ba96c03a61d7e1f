// xtgrad-lm: train, evaluate and sample word- and character-level language models, with the flags and
// conventions of the PyTorch word-language-model example.
#include <cstdlib>
#include <iostream>
#include <string>

#include <fmt/core.h>
#include <fmt/ostream.h>

#include <xtgrad/apps/lm/args.hpp>
#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/apps/lm/lm.hpp>
#include <xtgrad/layers/loss.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>

using namespace xtgrad;

namespace {

const char* kUsage = R"(usage: xtgrad-lm COMMAND [flags]

commands:
  train     train a language model (defaults: the example's small LSTM on WikiText-2)
  eval      loss and perplexity of a checkpoint on a split
  generate  sample text from a checkpoint

train flags (PyTorch word_language_model names; --batch_size and --batch-size both work):
  --data DIR           corpus: DIR/{train,valid,test}.txt (word); a file or DIR/input.txt (char)
                       default: ../shared/data/wikitext-2 (word) or ../shared/data/tinyshakespeare (char)
  --level word|char    tokens: whitespace-separated words + <eos> per line, or characters [word]
  --model LSTM|GRU|RNN_TANH|RNN_RELU [LSTM]
  --emsize N [200]  --nhid N [200]  --nlayers N [2]  --dropout P [0.2]  --tied
  --adaptive-softmax [--cutoffs 2000,10000] [--div-value 4]   frequent words in a head, rare ones in clusters
  --lr X [20]  --clip X [0.25] (<= 0: off)  --epochs N [40]  --batch_size N [20]  --bptt N [35]
  --optimizer sgd|adam|adamw|adagrad|rmsprop|ntasgd [sgd]  --momentum X [0]  --weight_decay X [0]
  --seed N [1111]  --log-interval N [200]  --max-batches N (per epoch; 0: all)  --threads N
  --save FILE [model.safetensors]   best model (by validation loss), written atomically; also
                       FILE.resume.safetensors (resume point) and FILE.metrics.jsonl (JSON lines)
  --checkpoint-interval N [1000]   batches between resume points (and at each epoch end)
  --init FILE          start from weights with the example's names (safetensors)
  --resume FILE        continue an interrupted run exactly (a .resume.safetensors file)
  --eval_batch_size N [10]  --eval-max-batches N
  --stop-after-batches N   stop after N batches in all, leaving a resume point (a time budget)

eval flags:     --checkpoint FILE  --data DIR  [--split test|valid] [--level L] [--model M] [--bptt N]
generate flags: --checkpoint FILE  [--data DIR] [--words N (100)] [--temperature T (1.0)] [--top-k K (0: all)]
                [--seed S] [--prompt TEXT] [--interactive]   (--data and --level only for plain PyTorch files)
)";

void set_threads(Args& a) {
    const long threads = a.integer("threads", 0, 0, 256);
    if (threads > 0) set_blas_threads(static_cast<int>(threads));
}

int cmd_train(Args& a) {
    TrainOptions o;
    o.level = a.str("level", "word");
    o.data = find_data(a.str("data", ""), o.level == "char" ? "tinyshakespeare" : "wikitext-2");
    o.model.model = a.str("model", "LSTM");
    o.model.emsize = static_cast<std::size_t>(a.integer("emsize", 200, 1, 1 << 20));
    o.model.nhid = static_cast<std::size_t>(a.integer("nhid", 200, 1, 1 << 20));
    o.model.nlayers = static_cast<std::size_t>(a.integer("nlayers", 2, 1, 64));
    o.model.dropout = static_cast<float>(a.real("dropout", 0.2, 0.0, 0.99));
    o.model.tied = a.flag("tied");
    if (a.flag("adaptive-softmax")) {
        const std::string cuts = a.str("cutoffs", "2000,10000");
        for (std::size_t pos = 0; pos <= cuts.size();) {
            std::size_t next = cuts.find(',', pos);
            if (next == std::string::npos) next = cuts.size();
            const std::string item = cuts.substr(pos, next - pos);
            char* end = nullptr;
            const long v = std::strtol(item.c_str(), &end, 10);
            if (item.empty() || *end != '\0' || v <= 0)
                throw ConfigError(fmt::format("--cutoffs: '{}' is not a list of positive counts like 2000,10000", cuts));
            o.model.cutoffs.push_back(static_cast<std::size_t>(v));
            pos = next + 1;
        }
        o.model.div_value = static_cast<float>(a.real("div-value", 4.0, 1.0, 1e3));
    } else if (a.has("cutoffs") || a.has("div-value")) {
        throw ConfigError("--cutoffs and --div-value go with --adaptive-softmax");
    }
    o.lr = a.real("lr", 20.0, 0.0, 1e6, true);
    o.clip = a.real("clip", 0.25, -1.0, 1e9);
    o.epochs = static_cast<std::size_t>(a.integer("epochs", 40, 1, 1000000));
    o.batch_size = static_cast<std::size_t>(a.integer("batch-size", 20, 1, 1 << 20));
    o.eval_batch_size = static_cast<std::size_t>(a.integer("eval-batch-size", 10, 1, 1 << 20));
    o.bptt = static_cast<std::size_t>(a.integer("bptt", 35, 1, 1 << 20));
    o.optimizer = a.str("optimizer", "sgd");
    o.momentum = a.real("momentum", 0.0, 0.0, 0.999999);
    o.weight_decay = a.real("weight-decay", 0.0, 0.0, 1.0);
    o.seed = static_cast<std::uint64_t>(a.integer("seed", 1111, 0, 0x7fffffffffffffffL));
    o.log_interval = static_cast<std::size_t>(a.integer("log-interval", 200, 1, 1 << 30));
    o.max_batches = static_cast<std::size_t>(a.integer("max-batches", 0, 0, 1L << 40));
    o.eval_max_batches = static_cast<std::size_t>(a.integer("eval-max-batches", 0, 0, 1L << 40));
    o.checkpoint_interval = static_cast<std::size_t>(a.integer("checkpoint-interval", 1000, 0, 1L << 40));
    o.stop_after = static_cast<std::size_t>(a.integer("stop-after-batches", 0, 0, 1L << 40));
    o.save = a.str("save", "model.safetensors");
    o.init = a.str("init", "");
    o.resume = a.str("resume", "");
    set_threads(a);
    a.finish();
    if (!o.init.empty() && !o.resume.empty()) throw ConfigError("--init and --resume exclude each other");
    o.model.vocab = 1;  // the real size comes from the data; checked here for the other settings
    o.model.validate();
    const TrainResult r = train(o, std::cout);
    return r.stopped_non_finite ? 3 : 0;
}

// The checkpoint, its vocabulary checked against (or rebuilt from) the data when --data is given.
LoadedModel open_model(Args& a, bool need_data, Corpus* corpus_out) {
    const std::string ckpt = a.str("checkpoint", "");
    if (ckpt.empty()) throw ConfigError("--checkpoint FILE is required");
    const std::string level = a.str("level", "word");
    const std::string hint = a.str("model", "");
    if (!hint.empty()) parse_cell_type(hint);
    std::string data = a.str("data", "");
    if (need_data) data = find_data(data, level == "char" ? "tinyshakespeare" : "wikitext-2");
    Corpus corpus;
    if (!data.empty()) corpus = load_corpus(data, level);
    LoadedModel m = load_model(ckpt, data.empty() ? nullptr : &corpus, hint);
    if (!data.empty() && !m.from_pytorch && m.vocab.tokens() != corpus.vocab.tokens())
        throw FileError(fmt::format("{}: its vocabulary ({} tokens, {} level) is not the one of {} ({} tokens, {} level)", ckpt,
                                    m.vocab.size(), m.level, data, corpus.vocab.size(), level));
    if (corpus_out) *corpus_out = std::move(corpus);
    return m;
}

int cmd_eval(Args& a) {
    Corpus corpus;
    LoadedModel m = open_model(a, true, &corpus);
    const std::string split = a.str("split", "test");
    const std::size_t bptt = static_cast<std::size_t>(a.integer("bptt", 35, 1, 1 << 20));
    const std::size_t batch = static_cast<std::size_t>(a.integer("eval-batch-size", 10, 1, 1 << 20));
    set_threads(a);
    a.finish();
    if (split != "test" && split != "valid") throw ConfigError(fmt::format("--split must be test or valid, got '{}'", split));
    const double loss = evaluate(*m.model, batchify(split == "test" ? corpus.test : corpus.valid, batch), bptt);
    const bool test_is_valid = split == "test" && corpus.test_name != "test";
    fmt::print("{} | {}{} | loss {:.4f} | ppl {:.2f}\n", m.model->config.describe(), split,
               test_is_valid ? " (the valid split: no test split of its own)" : "", loss, perplexity(loss));
    return 0;
}

int cmd_generate(Args& a) {
    LoadedModel m = open_model(a, false, nullptr);
    const std::size_t words = static_cast<std::size_t>(a.integer("words", 100, 0, 1L << 30));
    const double temperature = a.real("temperature", 1.0, 0.0, 1e3, true);
    const std::size_t top_k = static_cast<std::size_t>(a.integer("top-k", 0, 0, 1L << 30));
    const std::uint64_t seed = static_cast<std::uint64_t>(a.integer("seed", 1111, 0, 0x7fffffffffffffffL));
    const std::string prompt = a.str("prompt", "");
    const bool interactive = a.flag("interactive");
    set_threads(a);
    a.finish();
    Sampler s(*m.model, m.vocab, m.level, seed, static_cast<float>(temperature), top_k);
    if (!interactive) {
        if (!prompt.empty()) {
            s.feed(encode_prompt(prompt, m.vocab, m.level));
            fmt::print("{}{}", prompt, m.level == "word" ? " " : "");
        }
        fmt::print("{}\n", s.generate(words));
        return 0;
    }
    std::string line;
    fmt::print(std::cerr, "> ");
    while (std::getline(std::cin, line)) {
        try {
            s.feed(encode_prompt(line + (m.level == "char" ? "\n" : ""), m.vocab, m.level));
            fmt::print("{}\n", s.generate(words));
        } catch (const ConfigError& e) {
            fmt::print(std::cerr, "error: {}\n", e.what());
        }
        std::cout.flush();
        fmt::print(std::cerr, "> ");
    }
    fmt::print(std::cerr, "\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
        fmt::print("{}", kUsage);
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    for (int i = 2; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            fmt::print("{}", kUsage);
            return 0;
        }
    try {
        if (cmd == "train") {
            Args a(argc, argv, 2, {"tied", "adaptive-softmax"});
            return cmd_train(a);
        }
        if (cmd == "eval") {
            Args a(argc, argv, 2, {});
            return cmd_eval(a);
        }
        if (cmd == "generate") {
            Args a(argc, argv, 2, {"interactive"});
            return cmd_generate(a);
        }
        fmt::print(std::cerr, "xtgrad-lm: error: unknown command '{}'\n\n{}", cmd, kUsage);
        return 2;
    } catch (const ConfigError& e) {
        fmt::print(std::cerr, "xtgrad-lm {}: error: {}\n", cmd, e.what());
        return 2;
    } catch (const Error& e) {
        fmt::print(std::cerr, "xtgrad-lm {}: error: {}\n", cmd, e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        fmt::print(std::cerr, "xtgrad-lm {}: error: out of memory (try a smaller --batch-size, --bptt or model)\n", cmd);
        return 1;
    }
}
