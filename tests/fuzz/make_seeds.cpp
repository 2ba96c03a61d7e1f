// Writes the fuzz targets' seed corpora with the library's own writers (run once; the files are committed):
//   make_seeds DIR   ->   DIR/{safetensors,checkpoint,corpus,prompt}/...
// Small models (vocabulary 12, width 4) so that every seed stays under libFuzzer's 4 KB default, and the inputs
// of issue 12's findings, which must now give clear errors.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <fmt/core.h>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/safetensors.hpp>

using namespace xtgrad;

namespace {

std::string root;

void put(const std::string& sub, const std::string& name, const std::string& bytes) {
    ::mkdir((root + "/" + sub).c_str(), 0755);
    std::ofstream(root + "/" + sub + "/" + name, std::ios::binary) << bytes;
}

std::string le64(std::uint64_t n) {
    std::string s;
    for (int b = 0; b < 8; ++b) s += static_cast<char>((n >> (8 * b)) & 0xFF);
    return s;
}

std::string raw(const std::string& header, std::size_t data_bytes) { return le64(header.size()) + header + std::string(data_bytes, '\0'); }

const std::vector<std::string> kWords = {"<eos>", "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "<unk>"};

LMConfig config(const std::string& cell) {
    LMConfig c;
    c.cell = cell;
    c.vocab = kWords.size();
    c.emsize = c.nhid = 4;
    c.nlayers = 1;
    return c;
}

// A model file as save_model writes it (with a checkpoint's metadata), and its bytes.
std::string model_file(const LMConfig& c, const Vocab& vocab, const std::string& level) {
    Rng rng(7);
    RNNLM model(c, builtin_cell(parse_cell_type(c.cell)), rng);
    const std::string path = root + "/tmp.safetensors";
    save_model(path, model, vocab, level, "seed-run");
    const std::string bytes = read_file(path);
    std::remove(path.c_str());
    return bytes;
}

// A resume point as the trainer writes it.
std::string resume_file(const std::string& optimizer, const std::string& schedule_kind) {
    TrainOptions o;
    o.emsize = o.nhid = 4;
    o.nlayers = 1;
    o.batch_size = 2;
    o.optimizer = optimizer;
    o.lr_schedule = schedule_kind;
    o.lr = 1.0;
    LMConfig c = o.model_config();
    c.vocab = kWords.size();
    Rng rng(3);
    RNNLM model(c, builtin_cell(CellType::lstm), rng);
    std::vector<Parameter*> params = model.parameters();
    std::unique_ptr<Optimizer> opt = make_optimizer(o.optimizer, params, o.lr, o.momentum, o.weight_decay);
    for (Parameter* p : params) p->grad.fill(0.01f);
    opt->step();
    if (optimizer == "ntasgd") opt->observe(5.0), opt->observe(4.5);
    std::unique_ptr<LRSchedule> schedule;
    if (schedule_kind == "cosine") schedule = std::make_unique<CosineProgressLR>(o.lr);
    else schedule = std::make_unique<PlateauLR>(o.lr, 0.25, opt->holds_lr() ? std::numeric_limits<std::size_t>::max() : 0);
    TrainProgress p;
    p.epoch = 1;
    p.batch = 3;
    p.position = 24;
    p.total_batches = 3;
    p.run_id = "seed-run";
    const std::string save = root + "/r.safetensors";
    const Checkpointer files(save);
    RecurrentState hidden = model.zero_state(o.batch_size);
    files.save_resume(model, Vocab::from_tokens(kWords), "word", o, *opt, *schedule, p, hidden);
    const std::string bytes = read_file(files.resume_path());
    std::remove(files.resume_path().c_str());
    return bytes;
}

// bytes with metadata key set to value (re-encoded).
std::string with_meta(const std::string& bytes, const std::string& key, const std::string& value) {
    StateDict sd = decode_safetensors(bytes, "seed");
    sd.metadata[key] = value;
    return encode_safetensors(sd);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    ::mkdir(root.c_str(), 0755);
    const Vocab words = Vocab::from_tokens(kWords);

    // ---- checkpoints: each built-in cell, the adaptive softmax, tied, char level, a plain state dict, resume points
    const std::string lstm = model_file(config("LSTM"), words, "word");
    LMConfig gru = config("GRU");
    gru.cutoffs = {4, 8};
    Ids stream;
    for (int k = 0; k < 60; ++k) stream.push_back((k * 5) % 12);
    gru.order = frequency_order(stream, 12);
    const std::string adaptive = model_file(gru, words, "word");
    LMConfig tied = config("RNN_TANH");
    tied.tied = true;
    tied.nlayers = 2;
    const std::string tied_file = model_file(tied, words, "word");
    LMConfig ch = config("RNN_RELU");
    const Vocab chars = Vocab::from_tokens({"\n", "a", "b", "c", " ", "\xc3\xa9", "d", "e", "f", "g", "h", "i"});
    const std::string char_file = model_file(ch, chars, "char");
    StateDict plain = decode_safetensors(lstm, "seed");
    plain.metadata.clear();
    const std::string plain_file = encode_safetensors(plain);
    const std::string resume_nt = resume_file("ntasgd", "plateau");
    const std::string resume_adam = resume_file("adam", "cosine");
    for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"lstm.safetensors", lstm}, {"gru_adaptive.safetensors", adaptive}, {"rnn_tied.safetensors", tied_file},
             {"char_relu.safetensors", char_file}, {"plain_pytorch.safetensors", plain_file},
             {"resume_ntasgd.safetensors", resume_nt}, {"resume_adam_cosine.safetensors", resume_adam}}) {
        put("checkpoint", name, bytes);
        put("safetensors", name, bytes);
    }
    // issue 12's findings as inputs, each now a clear error: 1 (order out of range, repeated), 2 (a history
    // that does not parse), 4 (layers and widths the file cannot hold)
    const std::string order = decode_safetensors(adaptive, "seed").metadata.at("order");
    const std::string rest = order.substr(order.find(','));
    put("checkpoint", "finding1_order_range.safetensors", with_meta(adaptive, "order", "1000000" + rest));
    put("checkpoint", "finding1_order_repeat.safetensors", with_meta(adaptive, "order", rest.substr(1, rest.find(',', 1) - 1) + rest));
    put("checkpoint", "finding2_history.safetensors", with_meta(resume_nt, "optim.history", "7.5,abc"));
    put("checkpoint", "finding4_nlayers.safetensors", with_meta(lstm, "nlayers", "1000000000"));
    put("checkpoint", "finding4_nhid.safetensors", with_meta(lstm, "nhid", "65536"));

    // ---- safetensors by hand: scalar and empty tensors, metadata only, finding 3 (17 tensors with empty ones),
    // and malformed headers
    put("safetensors", "scalar_empty.safetensors",
        raw(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", 4));
    put("safetensors", "metadata_only.safetensors", raw(R"({"__metadata__":{"format":"pt","k":"v"}})", 0));
    StateDict many;
    for (int k = 0; k < 18; ++k) many.put(fmt::format("t{:02d}", k), Array({1, static_cast<std::size_t>(k % 3 == 0 ? 0 : 1)}));
    put("safetensors", "finding3_empty_among_18.safetensors", encode_safetensors(many));
    put("safetensors", "duplicate_key.safetensors",
        raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
    put("safetensors", "number_grammar.safetensors", raw(R"({"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4.]}})", 4));
    put("safetensors", "deep.safetensors", raw(std::string(64, '[') + std::string(64, ']'), 0));
    std::string zeros = "[0";
    for (int k = 0; k < 1000; ++k) zeros += ",0";
    put("safetensors", "zeros.safetensors", raw(zeros + "]", 0));

    // ---- corpora (0x1e cuts train | valid | test) and prompts
    put("corpus", "words.txt", " the cat sat \n\n a\tcat\r\nsat\x1e" "dog the\n\x1e new words \n");
    put("corpus", "unicode.txt", "caf\xc3\xa9 na\xc3\xafve\xc2\xa0space\xe2\x80\x83" "em\n\xf0\x9f\x98\x80 smile\n\x1evalid\x1etest");
    put("corpus", "bad_utf8.txt", "fine\nnot \xc3 fine\n\x1evalid\x1etest");
    put("corpus", "char_only.txt", "ROMEO:\nWhat light through yonder window breaks?\nJULIET:\nAy me!\n");
    put("corpus", "empty_split.txt", "train\x1e\x1etest");
    put("prompt", "words.txt", "the cat sat on the mat");
    put("prompt", "unknown.txt", "the zebra \xc3\xa9t\xc3\xa9");
    put("prompt", "chars.txt", "ab \xc3\xa9\n\xf0\x9f\x98\x80");
    put("prompt", "bad_utf8.txt", "the \xff\xfe cat");
    put("prompt", "spaces.txt", " \t\xc2\xa0\xe3\x80\x80 ");
    std::printf("seeds written to %s\n", root.c_str());
    return 0;
}
