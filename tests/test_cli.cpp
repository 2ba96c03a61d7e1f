// End to end through the command line: xtgrad-lm trains, saves, evaluates, generates and resumes on a few hundred
// tokens, and every bad input gets a clear error and a non-zero exit without touching existing checkpoints.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/safetensors.hpp>

#include "test_support.hpp"

namespace {

struct Run {
    int rc;
    std::string out;  // stdout and stderr
};

std::string exe() {
    const char* e = std::getenv("XTGRAD_LM");
    REQUIRE_MESSAGE(e != nullptr, "XTGRAD_LM must name the xtgrad-lm binary (meson test sets it)");
    return e;
}

// Runs a program with args (in the folder cwd, when given), feeding input to its standard input.
Run run_program(const std::string& program, const std::string& args, const std::string& input = "",
                const std::string& cwd = "") {
    std::string cmd = program + " " + args + " 2>&1";
    if (!input.empty()) cmd = "printf '" + input + "' | " + cmd;
    if (!cwd.empty()) cmd = "cd '" + cwd + "' && " + cmd;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
}

// Runs xtgrad-lm.
Run run(const std::string& args, const std::string& input = "", const std::string& cwd = "") {
    return run_program(exe(), args, input, cwd);
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// A few hundred tokens per split.
std::string make_data() { return test_support::small_corpus("cli", 1200, 400); }

const std::string kSmall = "--emsize 16 --nhid 16 --batch_size 4 --bptt 8 --threads 1 --log-interval 2";

}  // namespace

TEST_CASE("xtgrad-lm: train, save, eval, generate, interactive, resume") {
    const std::string d = make_data();
    Run r = run(fmt::format("train --data {} {} --epochs 2 --max-batches 6 --save {}/m.safetensors", d, kSmall, d));
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("| end of epoch   2 |") != std::string::npos);
    CHECK(r.out.find("tok/s") != std::string::npos);
    CHECK(r.out.find("End of training | test loss") != std::string::npos);
    const xtgrad::StateDict saved = xtgrad::load_safetensors(d + "/m.safetensors");
    CHECK(saved.tensors.count("rnn.weight_ih_l1") == 1);
    CHECK(saved.tensors.count("optim.step") == 0);  // the best-model file holds weights only
    const std::string metrics = slurp(d + "/m.metrics.jsonl");
    CHECK(metrics.find(R"("event":"epoch","epoch":2)") != std::string::npos);
    CHECK(metrics.find(R"("event":"test")") != std::string::npos);

    r = run(fmt::format("eval --checkpoint {0}/m.safetensors --data {0} --split valid", d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("ppl") != std::string::npos);

    r = run(fmt::format("generate --checkpoint {}/m.safetensors --words 25 --prompt \"the\" --seed 3 --top-k 10", d));
    CHECK(r.rc == 0);
    CHECK(r.out.rfind("the ", 0) == 0);
    const Run again = run(fmt::format("generate --checkpoint {}/m.safetensors --words 25 --prompt \"the\" --seed 3 --top-k 10", d));
    CHECK(again.out == r.out);  // same seed, same text

    // a plain state dict, as exported from PyTorch's example: no metadata; architecture from the shapes,
    // vocabulary rebuilt from --data
    xtgrad::StateDict plain = xtgrad::load_safetensors(d + "/m.safetensors");
    plain.metadata.clear();
    xtgrad::save_safetensors(d + "/plain.safetensors", plain);
    const Run ours = run(fmt::format("eval --checkpoint {0}/m.safetensors --data {0}", d));
    const Run theirs = run(fmt::format("eval --checkpoint {0}/plain.safetensors --data {0}", d));
    CHECK(theirs.rc == 0);
    CHECK(ours.out.substr(ours.out.find("loss")) == theirs.out.substr(theirs.out.find("loss")));
    CHECK(run(fmt::format("generate --checkpoint {0}/plain.safetensors --data {0} --words 5", d)).rc == 0);
    r = run(fmt::format("generate --checkpoint {0}/plain.safetensors --words 5", d));
    CHECK(r.rc == 1);
    CHECK(r.out.find("pass --data DIR to rebuild its vocabulary") != std::string::npos);

    r = run(fmt::format("generate --checkpoint {}/m.safetensors --words 5 --interactive", d), "the\\nof the\\n");
    CHECK(r.rc == 0);
    CHECK(std::count(r.out.begin(), r.out.end(), '>') >= 3);  // a prompt before each line and at the end

    r = run(fmt::format("train --data {} {} --epochs 2 --max-batches 6 --save {}/r.safetensors --stop-after-batches 4", d, kSmall, d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("stopped after 4 batches") != std::string::npos);
    r = run(fmt::format("train --data {} {} --epochs 2 --max-batches 6 --save {}/r.safetensors --resume {}/r.resume.safetensors", d,
                        kSmall, d, d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("resumed from") != std::string::npos);
    CHECK(xtgrad::load_safetensors(d + "/r.resume.safetensors").get("decoder.weight").value ==
          xtgrad::load_safetensors(d + "/m.resume.safetensors").get("decoder.weight").value);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("xtgrad-lm: adaptive softmax trains, evaluates and samples; char level too") {
    const std::string d = make_data();
    Run r = run(fmt::format("train --data {0} {1} --epochs 1 --max-batches 4 --adaptive-softmax --cutoffs 20,100 --save {0}/a.safetensors", d, kSmall));
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("adaptive softmax [20, 100]") != std::string::npos);
    CHECK(xtgrad::load_safetensors(d + "/a.safetensors").tensors.count("decoder.tail.1.1.weight") == 1);
    r = run(fmt::format("eval --checkpoint {0}/a.safetensors --data {0}", d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("ppl") != std::string::npos);
    r = run(fmt::format("generate --checkpoint {0}/a.safetensors --words 10", d));
    CHECK(r.rc == 0);
    r = run(fmt::format("train --data {0} {1} --epochs 8 --max-batches 2 --optimizer ntasgd --lr 1 --save {0}/n.safetensors", d, kSmall));
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(r.out.find("| end of epoch   8 |") != std::string::npos);

    r = run(fmt::format("train --data {0} --adaptive-softmax --cutoffs 20,x {1}", d, kSmall));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--cutoffs: 'x' is not a number") != std::string::npos);
    r = run(fmt::format("train --data {0} --cutoffs 20 {1}", d, kSmall));
    CHECK(r.out.find("go with --adaptive-softmax") != std::string::npos);

    r = run(fmt::format("train --level char --data {0}/train.txt {1} --epochs 1 --max-batches 4 --save {0}/c.safetensors", d, kSmall));
    CHECK(r.rc == 0);
    CHECK(r.out.find("(char level)") != std::string::npos);
    r = run(fmt::format("generate --checkpoint {0}/c.safetensors --words 40 --prompt \"The \"", d));
    CHECK(r.rc == 0);
    CHECK(r.out.rfind("The ", 0) == 0);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("xtgrad-lm: the adaptive softmax tied to the input; recipes fill what the command line leaves") {
    const std::string d = make_data();
    Run r = run(fmt::format("train --data {0} {1} --epochs 1 --max-batches 4 --adaptive-softmax --cutoffs 20,100 --tied "
                            "--save {0}/t.safetensors", d, kSmall));
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("tied, adaptive softmax [20, 100]") != std::string::npos);
    const xtgrad::StateDict sd = xtgrad::load_safetensors(d + "/t.safetensors");
    CHECK(sd.tensors.count("encoder.weight") == 0);  // the input vectors are the softmax's weights
    CHECK(sd.tensors.count("decoder.tail.0.1.weight") == 1);
    r = run(fmt::format("eval --checkpoint {0}/t.safetensors --data {0}", d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("tied, adaptive softmax") != std::string::npos);
    CHECK(run(fmt::format("generate --checkpoint {0}/t.safetensors --words 10", d)).rc == 0);

    // a recipe sets what the command line does not: pytorch-medium is dropout 0.5 and tied, at the sizes given here
    r = run(fmt::format("train --recipe pytorch-medium --data {0} {1} --epochs 1 --max-batches 3 --save {0}/p.safetensors "
                        "--checkpoint-interval 2", d, kSmall));
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("LSTM 2x16, emsize 16") != std::string::npos);
    CHECK(r.out.find("dropout 0.5, tied") != std::string::npos);
    r = run(fmt::format("train --resume {0}/p.resume.safetensors --recipe wt2-1h", d));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--recipe \"wt2-1h\" (the run has \"pytorch-medium\")") != std::string::npos);
    r = run(fmt::format("train --recipe fast --data {0}", d));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--recipe 'fast' is not a recipe (recipes: pytorch-small, ") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("xtgrad-lm report: a page from a checkpoint, its log and its data; a plain state dict with --data; bad input") {
    const std::string d = make_data();
    REQUIRE(run(fmt::format("train --data {} {} --epochs 1 --max-batches 6 --save {}/m.safetensors", d, kSmall, d)).rc == 0);
    const std::string fast = "--timing-batches 2 --windows 3 --position-tokens 100 --sample-tokens 5 --threads 1";
    Run r = run(fmt::format("report --checkpoint {0}/m.safetensors --out {0}/r.html --trace {0}/t.json {1}", d, fast));
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("wrote " + d + "/r.html") != std::string::npos);
    const std::string page = slurp(d + "/r.html");
    CHECK(page.find("\"format\":\"xtgrad-report\"") != std::string::npos);
    CHECK(page.find("\"command\":") != std::string::npos);  // the run card has the training command from the log
    CHECK(slurp(d + "/t.json").find("\"traceEvents\"") != std::string::npos);

    xtgrad::StateDict plain = xtgrad::load_safetensors(d + "/m.safetensors");
    plain.metadata.clear();
    xtgrad::save_safetensors(d + "/plain.safetensors", plain);
    r = run(fmt::format("report --checkpoint {0}/plain.safetensors --data {0} --out {0}/p.html {1}", d, fast));
    CHECK(r.rc == 0);
    r = run(fmt::format("report --checkpoint {0}/plain.safetensors --out {0}/p.html {1}", d, fast));
    CHECK(r.rc == 1);
    CHECK(r.out.find("pass --data DIR") != std::string::npos);

    // nothing is overwritten that this command did not write; bad flags name themselves
    std::ofstream(d + "/mine.html") << "keep me";
    r = run(fmt::format("report --checkpoint {0}/m.safetensors --out {0}/mine.html {1}", d, fast));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--out " + d + "/mine.html exists and is not a file this command wrote") != std::string::npos);
    CHECK(slurp(d + "/mine.html") == "keep me");
    r = run(fmt::format("report --checkpoint {0}/m.safetensors --out {0}/r.html --trace {0}/m.safetensors {1}", d, fast));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--trace") != std::string::npos);
    r = run(fmt::format("report --checkpoint {0}/missing.safetensors --out {0}/r.html", d));
    CHECK(r.rc == 1);
    CHECK(r.out.find(d + "/missing.safetensors") != std::string::npos);
    CHECK(run(fmt::format("report --checkpoint {0}/m.safetensors --bits 3", d)).rc == 2);
    CHECK(run("report --out x.html").rc == 2);  // --checkpoint is required
    r = run(fmt::format("report --checkpoint {0}/m.safetensors --out {0}/r.html --offset 100000 {1}", d, fast));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--offset 100000") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("xtgrad-lm: bad input gets a clear error, a non-zero exit, and no lost checkpoint") {
    const std::string d = make_data();
    REQUIRE(run(fmt::format("train --data {} {} --epochs 1 --max-batches 3 --save {}/m.safetensors", d, kSmall, d)).rc == 0);
    const std::string before = slurp(d + "/m.safetensors");

    struct Case {
        std::string args, message;
        int rc;
    };
    std::ofstream(d + "/bad.txt", std::ios::binary) << "fine\nnot \xc3 fine\n";
    std::system(fmt::format("mkdir -p {0}/empty {0}/two && touch {0}/empty/train.txt {0}/empty/valid.txt {0}/empty/test.txt && "
                            "cp {0}/train.txt {0}/valid.txt {0}/two/ && cp {0}/bad.txt {0}/badutf && mkdir {0}/utf && "
                            "cp {0}/train.txt {0}/test.txt {0}/utf/ && cp {0}/bad.txt {0}/utf/valid.txt && "
                            "head -c 1000 {0}/m.safetensors > {0}/cut.safetensors", d)
                    .c_str());
    const std::string save = fmt::format("--save {}/new.safetensors", d);  // a new run's: every case fails first
    const std::vector<Case> cases = {
        {fmt::format("train --data {}/nope {}", d, save), "nope: data directory not found", 1},
        {fmt::format("train --data {}/two {}", d, save), "test.txt is missing", 1},
        {fmt::format("train --data {}/empty {}", d, save), "train.txt: file is empty", 1},
        {fmt::format("train --data {}/utf {}", d, save), "valid.txt:2: invalid UTF-8", 1},
        {fmt::format("train --data {} --bptt 0 {}", d, save), "--bptt: must be in [1,", 2},
        {fmt::format("train --data {} --lr -1 {}", d, save), "--lr: must be in (0,", 2},
        {fmt::format("train --data {} --nhid 0 {}", d, save), "--nhid: must be in [1,", 2},
        {fmt::format("train --data {} --dropout 1.5 {}", d, save), "--dropout: must be in [0,", 2},
        {fmt::format("train --data {} --emsize 8 --nhid 16 --tied {}", d, save), "--tied needs --emsize == --nhid", 2},
        {fmt::format("train --data {} --model LSTMX {}", d, save), "does not know the model 'LSTMX' (it knows GRU, LSTM", 2},
        {fmt::format("train --data {} --optimizer lbfgs {} --emsize 8 --nhid 8", d, save), "unknown optimizer 'lbfgs'", 2},
        {fmt::format("train --data {} --bogus 3 {}", d, save), "not expected: 3 --bogus", 2},
        {fmt::format("train --data {} --epochs two {}", d, save), "--epochs: 'two' is not a number", 2},
        {fmt::format("train --data {} {}", d, save.substr(0, save.rfind('/'))), "is a directory", 2},
        {fmt::format("train --data {} --batch_size 100000 {}", d, save), "too short for --batch-size 100000", 2},
        {fmt::format("train --data {0} --emsize 32 --nhid 32 --init {0}/m.safetensors {1}", d, save),
         "tensor 'encoder.weight' has shape [", 1},
        {fmt::format("train --data {0} --resume {0}/m.safetensors {1}", d, save), "holds weights only", 1},
        {fmt::format("eval --checkpoint {0}/cut.safetensors --data {0}", d), "cut.safetensors", 1},
        {fmt::format("eval --checkpoint {0}/m.safetensors --data {0} --model GRU", d), "holds a LSTM model, but --model GRU", 1},
        {fmt::format("eval --checkpoint {0}/missing.safetensors --data {0}", d), "missing.safetensors: cannot open", 1},
        {fmt::format("eval --data {0}", d), "--checkpoint is required", 2},
        {fmt::format("generate --checkpoint {0}/m.safetensors --temperature 0", d), "--temperature: must be in (0,", 2},
        {fmt::format("train --data {0} --save {0}/m.safetensors --emsize 8 --nhid 8", d),
         "m.safetensors exists and belongs to another run", 2},
        {fmt::format("train --data {0} --save {0}/missing/m.safetensors", d), "cannot write into", 2},
        {"frobnicate", "unknown command 'frobnicate'", 2},
    };
    for (const Case& c : cases) {
        const Run r = run(c.args);
        INFO(c.args, "\n", r.out);
        CHECK(r.rc == c.rc);
        CHECK(r.out.find(c.message) != std::string::npos);
        CHECK(r.out.find("error") != std::string::npos);
    }
    CHECK(slurp(d + "/m.safetensors") == before);
    CHECK(std::ifstream(d + "/new.safetensors").fail());  // no failed run wrote anything

    // a NaN loss (here from broken initial weights) stops the run with a clear message; the checkpoint stays
    xtgrad::StateDict broken = xtgrad::load_safetensors(d + "/m.safetensors");
    broken.tensors.at("decoder.bias").value(0, 3) = NAN;
    xtgrad::save_safetensors(d + "/nan.safetensors", broken);
    const Run nan = run(fmt::format("train --data {0} {1} --epochs 1 --max-batches 6 --init {0}/nan.safetensors "
                                    "--save {0}/nan-run.safetensors", d, kSmall));
    INFO(nan.out);
    CHECK(nan.rc == 3);
    CHECK(nan.out.find("became") != std::string::npos);
    CHECK(nan.out.find("no checkpoint of this run had been written yet") != std::string::npos);
    CHECK(slurp(d + "/m.safetensors") == before);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("cell_zoo: a published cell gets the whole command line; stock xtgrad-lm refuses its checkpoint") {
    const char* zoo = std::getenv("CELL_ZOO");
    REQUIRE_MESSAGE(zoo != nullptr, "CELL_ZOO must name the cell_zoo binary (meson test sets it)");
    const std::string d = make_data();
    Run r = run_program(zoo, "gradcheck --model LN_LSTM");
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(r.out.find("rnn.layernorm_c_l1.weight") != std::string::npos);
    CHECK(r.out.rfind("ok: ok rel") != std::string::npos);
    r = run_program(zoo, fmt::format("train --model LN_LSTM --data {0} {1} --max-batches 20 --epochs 1 "
                                     "--save {0}/ln.safetensors", d, kSmall));
    CHECK(r.rc == 0);
    CHECK(r.out.find("LN_LSTM 2x16") != std::string::npos);
    CHECK(xtgrad::load_safetensors(d + "/ln.safetensors").tensors.count("rnn.layernorm_h_l1.bias") == 1);
    r = run_program(zoo, fmt::format("eval --checkpoint {0}/ln.safetensors --data {0}", d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("ppl") != std::string::npos);
    r = run_program(zoo, fmt::format("generate --checkpoint {0}/ln.safetensors --words 10 --seed 2", d));
    CHECK(r.rc == 0);
    CHECK(r.out.size() > 10);
    r = run(fmt::format("eval --checkpoint {0}/ln.safetensors --data {0}", d));
    CHECK(r.rc == 1);
    CHECK(r.out.find("the model was trained with the cell 'LN_LSTM', which xtgrad-lm does not know") != std::string::npos);

    // a cell option is saved with the model: eval rebuilds the attention memory of k = 3 states
    r = run_program(zoo, fmt::format("train --model ATTN_LSTM --cell-option k=3 --data {0} {1} --max-batches 4 "
                                     "--epochs 1 --save {0}/attn.safetensors", d, kSmall));
    CHECK(r.rc == 0);
    r = run_program(zoo, fmt::format("eval --checkpoint {0}/attn.safetensors --data {0}", d));
    CHECK(r.rc == 0);
    CHECK(r.out.find("ppl") != std::string::npos);
    r = run_program(zoo, fmt::format("train --model ATTN_LSTM --cell-option k=0 --data {0} {1} --save {0}/k0.safetensors",
                                     d, kSmall));
    CHECK(r.rc == 2);
    CHECK(r.out.find("cell option k: the attention window must be 1 to 256 states, got 0") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

// ---- issue 12's findings, each reproduced through the command line

TEST_CASE("finding 1: an adaptive-softmax checkpoint whose order is not a permutation is refused, never used") {
    const std::string d = make_data();
    REQUIRE(run(fmt::format("train --data {0} {1} --epochs 1 --max-batches 2 --adaptive-softmax --cutoffs 20,100 "
                            "--save {0}/a.safetensors", d, kSmall)).rc == 0);
    xtgrad::StateDict sd = xtgrad::load_safetensors(d + "/a.safetensors");
    const std::string order = sd.metadata.at("order");
    for (const std::string& bad : {std::string("1000000"), std::string("2147483648"), std::string("-1")}) {
        xtgrad::StateDict b = sd;
        b.metadata["order"] = bad + order.substr(order.find(','));
        xtgrad::save_safetensors(d + "/bad.safetensors", b);
        for (const char* cmd : {"generate --words 5", "eval --data"}) {
            const Run r = run(fmt::format("{} {} --checkpoint {}/bad.safetensors", cmd, std::string(cmd) == "eval --data" ? d : "", d));
            INFO(bad, " ", cmd, ": ", r.out);
            CHECK(r.rc == 1);
            CHECK(r.out.find("metadata 'order' item 0") != std::string::npos);
        }
    }
    // a repeated rank (a wrong loss before) is not a permutation
    const std::size_t second = order.find(',') + 1;
    xtgrad::StateDict dup = sd;
    dup.metadata["order"] = order.substr(0, order.find(',')) + "," + order.substr(0, order.find(',')) +
                            order.substr(order.find(',', second));
    xtgrad::save_safetensors(d + "/dup.safetensors", dup);
    const Run r = run(fmt::format("eval --checkpoint {0}/dup.safetensors --data {0}", d));
    CHECK(r.rc == 1);
    CHECK(r.out.find("is not a permutation") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("finding 2: a resume file with a malformed NT-ASGD history gives an error naming it, not a crash") {
    const std::string d = make_data();
    REQUIRE(run(fmt::format("train --data {0} {1} --epochs 2 --max-batches 2 --optimizer ntasgd --lr 1 "
                            "--save {0}/n.safetensors --stop-after-batches 3", d, kSmall)).rc == 0);
    xtgrad::StateDict sd = xtgrad::load_safetensors(d + "/n.resume.safetensors");
    sd.metadata["optim.history"] = "7.5,abc";
    xtgrad::save_safetensors(d + "/n.resume.safetensors", sd);
    const Run r = run(fmt::format("train --resume {0}/n.resume.safetensors --data {0}", d));
    INFO(r.out);
    CHECK(r.rc == 1);
    CHECK(r.out.find("optim.history' item 1 ('abc') is not a finite number") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("finding 5: --resume alone continues the run with its settings, refuses conflicts, writes only its files") {
    const std::string d = make_data();
    const std::string flags = fmt::format("--data {0} --emsize 16 --nhid 16 --batch_size 5 --bptt 8 --threads 1 "
                                          "--optimizer ntasgd --lr 2 --epochs 2 --max-batches 6 --dropout 0.1", d);
    REQUIRE(run(fmt::format("train {} --save {}/straight.safetensors", flags, d)).rc == 0);
    REQUIRE(run(fmt::format("train {} --save {}/r.safetensors --stop-after-batches 4", flags, d)).rc == 0);
    // another run's model where the old fallback (model.safetensors in the working directory) would write
    std::system(fmt::format("mkdir -p {0}/cwd && cp {0}/straight.safetensors {0}/cwd/model.safetensors", d).c_str());
    const std::string other = slurp(d + "/cwd/model.safetensors");

    // conflicting settings are refused, each named
    Run r = run(fmt::format("train --resume {0}/r.resume.safetensors --data {0} --nhid 32 --bptt 9 --lr 3 --seed 5", d));
    INFO(r.out);
    CHECK(r.rc == 2);
    for (const char* flag : {"--nhid 32 (the run has 16)", "--bptt 9 (the run has 8)", "--lr 3.0 (the run has 2.0)",
                             "--seed 5 (the run has 1111)"})
        CHECK(r.out.find(flag) != std::string::npos);
    // --resume alone (no --batch_size, --optimizer, --save): the run's settings and files
    r = run(fmt::format("train --resume ../r.resume.safetensors --data {0}", d), "", d + "/cwd");
    CHECK(r.rc == 0);
    CHECK(r.out.find("resumed from") != std::string::npos);
    CHECK(slurp(d + "/cwd/model.safetensors") == other);
    CHECK(xtgrad::load_safetensors(d + "/r.resume.safetensors").get("decoder.weight").value ==
          xtgrad::load_safetensors(d + "/straight.resume.safetensors").get("decoder.weight").value);
    CHECK(xtgrad::load_safetensors(d + "/r.safetensors").get("decoder.weight").value ==
          xtgrad::load_safetensors(d + "/straight.safetensors").get("decoder.weight").value);
    // pointing --save at another run's file is refused
    r = run(fmt::format("train --resume {0}/r.resume.safetensors --data {0} --save {0}/straight.safetensors", d));
    CHECK(r.rc == 2);
    CHECK(r.out.find("belongs to another run") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("finding 7: a diverging run stops non-zero, keeps only what it wrote, and never saves a non-finite model") {
    const std::string d = make_data();
    const Run r = run(fmt::format("train --data {0} {1} --epochs 2 --max-batches 6 --lr 1e6 --clip 0 --save {0}/x.safetensors",
                                  d, kSmall));
    INFO(r.out);
    CHECK(r.rc == 3);
    CHECK(r.out.find("became") != std::string::npos);
    CHECK(std::ifstream(d + "/x.safetensors").fail());  // no best model from non-finite weights
    CHECK(r.out.find("x.safetensors,") == std::string::npos);  // and none claimed
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("finding 8: a bad interactive line ends only that line; a full stdout is an error") {
    const std::string d = make_data();
    REQUIRE(run(fmt::format("train --data {0} {1} --epochs 1 --max-batches 2 --save {0}/m.safetensors", d, kSmall)).rc == 0);
    Run r = run(fmt::format("generate --checkpoint {}/m.safetensors --words 3 --interactive", d), "the\\n\\377\\376 bad\\nof\\n");
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(r.out.find("invalid UTF-8") != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '>') >= 4);  // it went on to the third line
    // stdout to a full device, stderr kept: the error is reported and the status says it
    FILE* p = ::popen(fmt::format("{} generate --checkpoint {}/m.safetensors --words 3 2>&1 >/dev/full", exe(), d).c_str(), "r");
    REQUIRE(p != nullptr);
    std::string err;
    char buf[512];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) err.append(buf, n);
    const int status = ::pclose(p);
    INFO(err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 4);
    CHECK(err.find("cannot write the output") != std::string::npos);
    std::system(("rm -rf " + d).c_str());
}

TEST_CASE("finding 8: --save into a folder that cannot take a file fails first, with the system's reason") {
    const std::string d = make_data();
    ::mkdir((d + "/ro").c_str(), 0555);
    struct Case {
        std::string save, reason;
    };
    std::vector<Case> cases = {{d + "/missing/m.safetensors", "cannot write into " + d + "/missing: No such file or directory"},
                               {"/sys/m.safetensors", "cannot write into /sys: "}};  // not writable even by root
    if (::geteuid() != 0) cases.push_back({d + "/ro/m.safetensors", "cannot write into " + d + "/ro: Permission denied"});
    for (const Case& c : cases) {
        // the data folder does not exist either: the save folder is checked before any data is read
        const Run r = run(fmt::format("train --data {}/no-data --save {}", d, c.save));
        INFO(r.out);
        CHECK(r.rc == 2);
        CHECK(r.out.find(c.reason) != std::string::npos);
        CHECK(r.out.find("no-data") == std::string::npos);
    }
    std::system(("chmod 755 " + d + "/ro && rm -rf " + d).c_str());
}

TEST_CASE("--precision: fp32 by default, bf16 where it runs on bf16 instructions, refused elsewhere by name") {
    const std::string d = make_data();
    // 10 x 8 = 80 rows per window: the decoder and input projections are window products, bf16 on a bf16 tape
    const std::string small = "--emsize 16 --nhid 16 --batch_size 10 --bptt 8 --threads 1 --log-interval 2";
    Run r = run(fmt::format("train --data {} {} --epochs 1 --max-batches 4 --precision fp16 --save {}/x.safetensors", d,
                            small, d));
    CHECK(r.rc == 2);
    CHECK(r.out.find("--precision must be fp32 or bf16, got 'fp16'") != std::string::npos);
    r = run(fmt::format("train --data {} {} --epochs 1 --max-batches 4 --precision bf16 --save {}/b.safetensors", d, small, d));
    INFO(r.out);
    if (!xtgrad::bf16_native()) {
        CHECK(r.rc == 2);
        CHECK(r.out.find("--precision bf16: the matrix products would not run on bf16 instructions") != std::string::npos);
        CHECK(run(fmt::format("eval --checkpoint {0}/none.safetensors --data {0} --precision bf16", d)).rc == 2);
    } else {
        REQUIRE(r.rc == 0);
        CHECK(r.out.find("End of training | test loss") != std::string::npos);
        // resuming with another precision is refused: the setting defines the run
        r = run(fmt::format("train --data {} {} --epochs 1 --max-batches 4 --precision fp32 --save {}/b.safetensors "
                            "--resume {}/b.resume.safetensors", d, small, d, d));
        CHECK(r.rc == 2);
        CHECK(r.out.find(R"(--precision "fp32" (the run has "bf16"))") != std::string::npos);
        // evaluation in bf16 scores the same model as fp32 does, up to bf16 rounding of the logits' products
        const Run e32 = run(fmt::format("eval --checkpoint {0}/b.safetensors --data {0}", d));
        const Run e16 = run(fmt::format("eval --checkpoint {0}/b.safetensors --data {0} --precision bf16", d));
        REQUIRE(e32.rc == 0);
        REQUIRE(e16.rc == 0);
        const double l32 = std::atof(e32.out.c_str() + e32.out.find("loss ") + 5);
        const double l16 = std::atof(e16.out.c_str() + e16.out.find("loss ") + 5);
        CHECK(l32 > 0.5);
        CHECK(std::abs(l16 - l32) <= 0.01 * l32);  // 2^-8 relative on each operand moves a loss of ~6 nats by < 0.1
        CHECK(run(fmt::format("eval --checkpoint {0}/b.safetensors --data {0} --precision bf16 --cache-size 10", d)).rc == 2);
    }
    std::system(("rm -rf " + d).c_str());
}
