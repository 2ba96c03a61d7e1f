// Checkpoints: safetensors by the spec, bad files with clear errors, atomic writes under SIGKILL, exact resume.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/core.h>

#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/trainer.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>

using namespace xtgrad;

namespace {

std::string tmpdir() {
    char tmpl[] = "/tmp/xtgrad-ckpt-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

std::string le64(std::uint64_t n) {
    std::string s;
    for (int b = 0; b < 8; ++b) s += static_cast<char>((n >> (8 * b)) & 0xFF);
    return s;
}

std::string f32(std::initializer_list<float> v) {
    std::string s;
    for (float x : v) {
        std::uint32_t u;
        std::memcpy(&u, &x, 4);
        for (int b = 0; b < 4; ++b) s += static_cast<char>((u >> (8 * b)) & 0xFF);  // little-endian, by hand
    }
    return s;
}

// A file as another program would write it, byte by byte from the spec: u64 header size, JSON header, data.
std::string fixture(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

const std::string kHeader =
    R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
    R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
const std::string kData = f32({1, 2, 3, 4, 5, 6}) + f32({-0.5f, 7.25f});

void expect_error(const std::string& bytes, const std::string& what) {
    INFO("expected an error containing: ", what);
    CHECK_THROWS_WITH_AS(decode_safetensors(bytes, "f.safetensors"), doctest::Contains(what.c_str()), FileError);
}

}  // namespace

TEST_CASE("safetensors: a file written byte by byte from the spec loads, and round-trips through our writer") {
    const StateDict sd = decode_safetensors(fixture(kHeader, kData), "fixture");
    REQUIRE(sd.tensors.size() == 2);
    CHECK(sd.metadata.at("format") == "pt");
    const auto& a = sd.get("a");
    CHECK(a.shape == std::vector<std::size_t>{2, 3});
    CHECK(a.value(1, 2) == 6.0f);
    const auto& b = sd.get("b");
    CHECK(b.shape == std::vector<std::size_t>{2});
    CHECK(b.value(0, 1) == 7.25f);

    const std::string ours = encode_safetensors(sd);
    std::uint64_t n = 0;
    for (int k = 0; k < 8; ++k) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(ours[k])) << (8 * k);
    CHECK(n % 8 == 0);  // header padded to 8 bytes, as the spec recommends
    CHECK(ours.substr(8 + n) == f32({1, 2, 3, 4, 5, 6}) + f32({-0.5f, 7.25f}));  // sorted by name: a, then b
    const StateDict back = decode_safetensors(ours, "ours");
    CHECK(back.get("a").value == a.value);
    CHECK(back.get("b").shape == b.shape);
    CHECK(back.metadata == sd.metadata);

    // scalars (shape []) and empty tensors are legal
    const std::string h2 = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})";
    const StateDict sc = decode_safetensors(fixture(h2, f32({3.5f})), "scalar");
    CHECK(sc.get("s").value(0, 0) == 3.5f);
    CHECK(sc.get("e").value.size() == 0);
}

TEST_CASE("safetensors: truncated, corrupted and inconsistent files give clear errors, never a crash") {
    const std::string good = fixture(kHeader, kData);
    for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{8}, std::size_t{20}, good.size() - kData.size() - 1,
                            good.size() - 9, good.size() - 1}) {
        INFO("truncated to ", cut, " bytes");
        CHECK_THROWS_AS(decode_safetensors(good.substr(0, cut), "t"), FileError);
    }
    expect_error(good.substr(0, 5), "shorter than the 8-byte header length");
    expect_error(good.substr(0, good.size() - 1), "data_offsets [24, 32] fall outside the 31-byte data buffer");
    expect_error(good + "junk", "the data buffer has 36 bytes but the tensors cover 32");
    expect_error(le64(1ull << 40) + kHeader + kData, "exceeds the 100 MB limit");
    expect_error(le64(kHeader.size() + 100) + kHeader + kData, "runs past the end");
    for (std::size_t pos : {std::size_t{8}, std::size_t{9}, std::size_t{40}, std::size_t{8} + kHeader.size() - 1}) {
        std::string bad = good;
        bad[pos] ^= 0x5A;  // flip bits inside the JSON header
        INFO("flipped byte ", pos);
        CHECK_THROWS_AS(decode_safetensors(bad, "flip"), FileError);
    }
    std::string h = kHeader;
    h.replace(h.find("F32"), 3, "F16");
    expect_error(fixture(h, kData), "dtype F16 is not supported");
    h = kHeader;
    h.replace(h.find("[2,3]"), 5, "[3,3]");
    expect_error(fixture(h, kData), "hold 24 bytes but shape [3, 3] of F32 needs 36");
    h = kHeader;
    h.replace(h.find("[0,24]"), 6, "[0,99]");
    expect_error(fixture(h, kData), "fall outside the 32-byte data buffer");
    h = kHeader;
    h.replace(h.find("[24,32]"), 7, "[16,24]");
    expect_error(fixture(h, kData + "xxxxxxxx"), "overlaps");
    expect_error(fixture(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32({1, 2})), "a hole of 4 bytes");
    expect_error(fixture(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32({1, 2})),
                 "duplicate key");
    expect_error(fixture(R"([1,2])", ""), "not a JSON object");
    expect_error(fixture(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f32({1})), "non-negative integers");
    expect_error(fixture(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", f32({1})), "malformed JSON");
    expect_error(fixture(std::string(200, '['), ""), "JSON nesting deeper than 3");
    CHECK_THROWS_WITH_AS(load_safetensors("/nonexistent/x.safetensors"), doctest::Contains("/nonexistent/x.safetensors: cannot open"), FileError);
    CHECK_THROWS_WITH_AS(load_safetensors("/tmp"), doctest::Contains("not a regular file"), FileError);
}

TEST_CASE("finding 3: files with empty tensors among many round-trip, whatever the order of equal offsets") {
    // An empty tensor begins where the next one does. With 17 or more tensors std::sort leaves equal keys in
    // any order, and sorting by begin alone rejected about 1 in 10 of these files as overlapping.
    Rng rng(12);
    std::size_t empties = 0;
    for (int round = 0; round < 300; ++round) {
        StateDict sd;
        const std::size_t n = 17 + rng.below(24);
        for (std::size_t k = 0; k < n; ++k) {
            const bool empty = rng.below(3) == 0;
            const std::size_t rows = 1 + rng.below(3), cols = empty ? 0 : 1 + rng.below(5);
            Array a({rows, cols});
            for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(round * 1000 + k * 10 + i);
            sd.put(fmt::format("t{:02d}", rng.below(100)) + std::to_string(k), a);
            empties += empty;
        }
        INFO("round ", round, ", ", n, " tensors");
        const StateDict back = decode_safetensors(encode_safetensors(sd), "round trip");
        REQUIRE(back.tensors.size() == sd.tensors.size());
        for (const auto& [name, e] : sd.tensors) {
            CHECK(back.get(name).shape == e.shape);
            CHECK(back.get(name).value == e.value);
        }
    }
    CHECK(empties > 1000);
    // and written by hand: an empty tensor listed after the one it shares its offset with, then before it
    for (const char* h : {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                          R"({"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"})
        CHECK(decode_safetensors(fixture(h, f32({1})), "hand").get("a").value(0, 0) == 1.0f);
}

TEST_CASE("loading weights into a model of another shape names the tensor and both shapes") {
    LMConfig c;
    c.vocab = 30;
    c.emsize = c.nhid = 8;
    Rng rng(1);
    RNNLM model(c, builtin_cell(CellType::lstm), rng);
    StateDict sd;
    model.save_weights(sd);
    LMConfig big = c;
    big.nhid = 12;
    RNNLM other(big, builtin_cell(CellType::lstm), rng);
    CHECK_THROWS_WITH_AS(other.load_weights(sd, "m.safetensors"),
                         doctest::Contains("m.safetensors: tensor 'rnn.weight_ih_l0' has shape [32, 8], this LSTM 2x12"), FileError);
    StateDict missing = sd;
    missing.tensors.erase("decoder.bias");
    CHECK_THROWS_WITH_AS(model.load_weights(missing, "m"), doctest::Contains("no tensor named 'decoder.bias'"), FileError);
    StateDict extra = sd;
    extra.put("rnn.weight_ih_l2", Array({32, 8}));
    CHECK_THROWS_WITH_AS(model.load_weights(extra, "m"), doctest::Contains("unexpected tensor 'rnn.weight_ih_l2'"), FileError);
    // a plain PyTorch state dict: the architecture is read from names and shapes
    const LMConfig inferred = infer_pytorch_config(sd, "", "pt");
    CHECK(inferred.cell == "LSTM");
    CHECK(inferred.nlayers == 2);
    CHECK(inferred.nhid == 8);
    CHECK(inferred.vocab == 30);
    CHECK_THROWS_WITH_AS(infer_pytorch_config(sd, "GRU", "pt"), doctest::Contains("weights are of a LSTM model"), FileError);
}

namespace {

// The entries of a folder whose names start with prefix.
std::vector<std::string> entries(const std::string& dir, const std::string& prefix) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (const dirent* e = ::readdir(d))
        if (std::string(e->d_name).rfind(prefix, 0) == 0) out.push_back(e->d_name);
    ::closedir(d);
    return out;
}

// Runs body with every write taking the named-temporary path (as on a file system without O_TMPFILE), or not.
template <class F>
void with_named_temporaries(bool named, F&& body) {
    if (named) ::setenv("XTGRAD_NO_TMPFILE", "1", 1);
    body();
    ::unsetenv("XTGRAD_NO_TMPFILE");
}

// A process's open file descriptors.
std::size_t open_fds() { return entries("/proc/self/fd", "").size(); }

std::atomic<bool> g_fail_fsync{false};

}  // namespace

// Interposes libc's fsync for the whole test binary (libxtgrad calls it through the PLT): fails on demand.
extern "C" int fsync(int fd) {
    if (g_fail_fsync.load()) {
        errno = EIO;
        return -1;
    }
    return static_cast<int>(::syscall(SYS_fsync, fd));
}

TEST_CASE("a process killed (SIGKILL) while writing checkpoints leaves a loadable file, and no temporary for long") {
    for (bool named : {false, true}) {
        INFO(std::string(named ? "named temporaries" : "O_TMPFILE"));
        const std::string dir = tmpdir();
        const std::string path = dir + "/ckpt.safetensors";
        auto version = [](int v) {
            StateDict sd;
            Array big({512, 1024}, static_cast<float>(v));  // 2 MB: a write takes a while
            sd.put("w", big);
            sd.put_int("version", v);
            return sd;
        };
        save_safetensors(path, version(0));
        int survived = 0;
        for (int round = 0; round < 12; ++round) {
            const pid_t pid = ::fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                if (named) ::setenv("XTGRAD_NO_TMPFILE", "1", 1);
                for (int v = 1;; ++v) save_safetensors(path, version(v));  // until killed
            }
            ::usleep(static_cast<useconds_t>(3000 + 4000 * round));
            ::kill(pid, SIGKILL);
            int status = 0;
            ::waitpid(pid, &status, 0);
            CHECK(WIFSIGNALED(status));
            const StateDict sd = load_safetensors(path);  // never torn
            const float v = sd.get("w").value(0, 0);
            CHECK(sd.get("w").value(511, 1023) == v);
            CHECK(MetaReader(sd, path).count("version", 0, 1u << 20) == static_cast<std::uint64_t>(v));
            ++survived;
        }
        CHECK(survived == 12);
        // what killed writers left (a named temporary each, unless unnamed) goes with the next write
        const std::size_t left = entries(dir, "ckpt.safetensors.tmp").size();
        MESSAGE(std::string(named ? "named" : "O_TMPFILE") << ": " << left << " temporaries left by 12 killed writers");
        with_named_temporaries(named, [&] { save_safetensors(path, version(99)); });
        CHECK(entries(dir, "ckpt.safetensors.tmp").empty());
        std::system(("rm -rf " + dir).c_str());
    }
}

TEST_CASE("finding 6: temporaries are created exclusively under names no one can plant; only the dead's are removed") {
    for (bool named : {false, true}) {
        INFO(std::string(named ? "named temporaries" : "O_TMPFILE"));
        const std::string dir = tmpdir();
        const std::string path = dir + "/m.safetensors";
        // another file, and a symlink to it where the old code put its temporary (<path>.tmp.<pid>)
        std::ofstream(dir + "/victim") << "precious";
        const std::string planted = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
        REQUIRE(::symlink((dir + "/victim").c_str(), planted.c_str()) == 0);
        StateDict sd;
        sd.put("w", Array({2, 2}, 1.5f));
        with_named_temporaries(named, [&] { save_safetensors(path, sd); });
        std::ifstream in(dir + "/victim");
        std::string victim((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        CHECK(victim == "precious");  // before: the checkpoint's bytes
        CHECK(load_safetensors(path).get("w").value(1, 1) == 1.5f);

        // leftovers: of a process that is gone (removed), of one that runs (kept: it may be writing), and names
        // that are not ours (kept)
        const pid_t child = ::fork();
        if (child == 0) ::_exit(0);
        ::waitpid(child, nullptr, 0);  // now a pid that no longer runs
        const std::string dead = fmt::format("m.safetensors.tmp-{}-0123456789abcdef", static_cast<long>(child));
        const std::string dead_old = fmt::format("m.safetensors.tmp.{}", static_cast<long>(child));  // earlier versions
        const std::string live = fmt::format("m.safetensors.tmp-{}-0123456789abcdef", static_cast<long>(::getppid()));
        const std::vector<std::string> kept = {live, "m.safetensors.tmp-12-short", "m.safetensors.tmp-x-0123456789abcdef",
                                               fmt::format("other.safetensors.tmp-{}-0123456789abcdef", static_cast<long>(child))};
        for (const std::string& f : kept) std::ofstream(dir + "/" + f) << "x";
        REQUIRE(::symlink((dir + "/victim").c_str(), (dir + "/" + dead).c_str()) == 0);  // removed as a name
        std::ofstream(dir + "/" + dead_old) << "x";
        with_named_temporaries(named, [&] { save_safetensors(path, sd); });
        CHECK(std::ifstream(dir + "/" + dead).fail());
        CHECK(std::ifstream(dir + "/" + dead_old).fail());  // before: never removed
        CHECK(std::ifstream(dir + "/victim").good());
        for (const std::string& f : kept) CHECK(std::ifstream(dir + "/" + f).good());
        std::system(("rm -rf " + dir).c_str());
    }
}

TEST_CASE("finding 8: a failed fsync closes the temporary and removes it; the previous file stays") {
    for (bool named : {false, true}) {
        INFO(std::string(named ? "named temporaries" : "O_TMPFILE"));
        const std::string dir = tmpdir();
        const std::string path = dir + "/m.safetensors";
        StateDict sd;
        sd.put("w", Array({2, 2}, 1.0f));
        save_safetensors(path, sd);
        sd.put("w", Array({2, 2}, 2.0f));
        const std::size_t fds = open_fds();
        with_named_temporaries(named, [&] {
            g_fail_fsync = true;
            CHECK_THROWS_WITH_AS(save_safetensors(path, sd), doctest::Contains("fsync failed: Input/output error (the previous file is intact)"),
                                 FileError);
            g_fail_fsync = false;
        });
        CHECK(open_fds() == fds);  // before: the descriptor leaked
        CHECK(entries(dir, "m.safetensors.tmp").empty());
        CHECK(load_safetensors(path).get("w").value(0, 0) == 1.0f);
        std::system(("rm -rf " + dir).c_str());
    }
    // a folder that cannot take a file: the system's reason, before anything is written
    CHECK_THROWS_WITH_AS(check_can_write("/nonexistent/m.safetensors"), doctest::Contains("cannot write into /nonexistent: No such file"),
                         FileError);
    CHECK_THROWS_WITH_AS(check_can_write("/sys/m.safetensors"), doctest::Contains("cannot write into /sys: "), FileError);
    CHECK_THROWS_WITH_AS(write_file_atomic("/sys/m.safetensors", "x"), doctest::Contains("cannot create a temporary file in /sys: "),
                         FileError);
    const std::string dir = tmpdir();
    check_can_write(dir + "/m.safetensors");
    CHECK(entries(dir, "").size() == 2);  // . and .. : nothing left behind
    std::system(("rm -rf " + dir).c_str());
}

namespace {

// A small corpus on disk: 3 splits of made-up sentences.
std::string make_corpus() {
    const std::string dir = tmpdir();
    Rng rng(3);
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "and", "then", "slept"};
    for (const char* split : {"train", "valid", "test"}) {
        std::ofstream f(dir + "/" + split + ".txt");
        const int lines = std::string(split) == "train" ? 120 : 30;
        for (int l = 0; l < lines; ++l) {
            f << ' ';
            for (int w = 0; w < 8; ++w) f << words[rng.below(13)] << ' ';
            f << '\n';
        }
    }
    return dir;
}

TrainOptions small_run(const std::string& data, const std::string& save, const std::string& optimizer) {
    TrainOptions o;
    o.data = data;
    o.save = save;
    o.optimizer = optimizer;
    o.lr = optimizer == "sgd" ? 2.0 : 0.01;
    o.momentum = 0.9;
    o.emsize = o.nhid = 12;
    o.dropout = 0.3f;
    o.batch_size = 4;
    o.bptt = 5;
    o.epochs = 2;
    o.max_batches = 6;  // 2 epochs x 6 batches, validation and lr annealing in between
    o.checkpoint_interval = 0;
    o.quiet = true;
    return o;
}

}  // namespace

TEST_CASE("resume: N batches, save, load in a fresh state, N more == 2N straight, bit for bit") {
    const std::string data = make_corpus();
    for (const char* optimizer : {"sgd", "adam"}) {
        for (std::size_t stop : {std::size_t{3}, std::size_t{6}, std::size_t{9}}) {  // mid-epoch, epoch end, mid-epoch 2
            INFO(optimizer, ", interrupted after ", stop, " batches");
            std::ostringstream log;
            const std::string tag = fmt::format("{}-{}", optimizer, stop);
            const Registry models = builtin_registry();
            const TrainOptions straight = small_run(data, data + "/a-" + tag + ".safetensors", optimizer);
            Trainer(straight, models, log).run();

            TrainOptions first = small_run(data, data + "/b-" + tag + ".safetensors", optimizer);
            first.stop_after = stop;
            CHECK(Trainer(first, models, log).run().stopped_early);
            TrainOptions second = small_run(data, first.save, optimizer);
            second.resume = Checkpointer(second.save).resume_path();
            Trainer(second, models, log).run();

            const StateDict a = load_safetensors(Checkpointer(straight.save).resume_path());
            const StateDict b = load_safetensors(Checkpointer(second.save).resume_path());
            REQUIRE(a.tensors.size() == b.tensors.size());
            for (const auto& [name, e] : a.tensors) {
                INFO(name);
                CHECK(e.value == b.get(name).value);  // weights, optimiser state, hidden state
            }
            for (const char* key : {"optim.step", "optim.lr", "schedule.lr", "schedule.best", "rng.0", "epoch", "batch",
                                    "position"})
                CHECK(a.metadata.at(key) == b.metadata.at(key));
            CHECK(load_safetensors(straight.save).get("decoder.weight").value ==
                  load_safetensors(second.save).get("decoder.weight").value);
        }
    }
    std::system(("rm -rf " + data).c_str());
}
