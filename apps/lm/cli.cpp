#include <xtgrad/apps/lm/cli.hpp>

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <system_error>
#include <type_traits>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <xtgrad/apps/lm/cache.hpp>
#include <xtgrad/apps/lm/cellcheck.hpp>
#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/distributed.hpp>
#include <xtgrad/apps/lm/evaluate.hpp>
#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/apps/lm/report_model.hpp>
#include <xtgrad/apps/lm/trainer.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {

// --cache-tune's grid: theta is the sharpness of the cache's softmax over h_t . h_i, whose scale grows with the
// model's hidden size (Grave et al. 2017 tune it on the validation split too); lambda is the cache's share.
const std::vector<double> kThetas = {0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0};
const std::vector<double> kLambdas = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4};

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

// "--batch-size,--batch_size": the example's underscore spellings work too.
std::string flag_names(const std::string& name) {
    std::string names = "--" + name, under = name;
    std::replace(under.begin(), under.end(), '-', '_');
    if (under != name) names += ",--" + under;
    return names;
}

// A bounds check whose message names the flag and the range.
CLI::Validator bounds(const Field& f) {
    return CLI::Validator(
        [f](std::string& s) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            if (s.empty() || *end != '\0' || !std::isfinite(v)) return fmt::format("'{}' is not a number", s);
            if (v < f.lo || v > f.hi || (f.lo_open && v == f.lo))
                return fmt::format("must be in {}{}, {}], got {}", f.lo_open ? "(" : "[", f.lo, f.hi, s);
            return "";
        },
        "");
}

// The same for a flag outside the table.
CLI::Validator bounds(double lo, double hi, bool lo_open = false) { return bounds(Field{"", "", FieldKind::session, lo, hi, lo_open}); }

// Adds one CLI11 option per entry of a table, bound to the struct's member, with its help and default.
struct Binder {
    CLI::App& app;
    std::map<std::string, CLI::Option*>& options;

    template <class T>
    void operator()(const Field& f, T& member) {
        CLI::Option* o = nullptr;
        if constexpr (std::is_same_v<T, bool>) {
            o = app.add_flag(flag_names(f.name), member, f.help);
        } else {
            o = app.add_option(flag_names(f.name), member, f.help)->capture_default_str();
            if constexpr (is_vector<T>::value) {
                o->delimiter(',');
                if constexpr (std::is_arithmetic_v<typename T::value_type>) o->check(bounds(f));
            } else if constexpr (std::is_arithmetic_v<T>) {
                o->check(bounds(f));
            }
        }
        options[f.name] = o;
    }
};

// The flags given on this command line, by name.
std::set<std::string> given(const std::map<std::string, CLI::Option*>& options) {
    std::set<std::string> g;
    for (const auto& [name, opt] : options)
        if (opt->count() > 0) g.insert(name);
    return g;
}

void set_threads(std::size_t n) {
    if (n > 0) set_blas_threads(static_cast<int>(n));
}

// ---- eval and generate

struct ModelFlags {
    std::string checkpoint, data, level = "word", cell;
    std::size_t threads = 0;
};

void add_model_flags(CLI::App& cmd, ModelFlags& m) {
    cmd.add_option("--checkpoint", m.checkpoint, "model file (an xtgrad checkpoint or a PyTorch state dict)")->required();
    cmd.add_option("--data", m.data, "corpus, for a plain PyTorch state dict's vocabulary (eval: the split to score)");
    cmd.add_option("--level", m.level, "word or char (plain PyTorch state dicts)")->capture_default_str();
    cmd.add_option("--model", m.cell, "the cell the file must hold (settles RNN_TANH vs RNN_RELU for PyTorch files)");
    cmd.add_option("--threads", m.threads, "BLAS threads (0: OpenBLAS's default)")->check(bounds(0, 256));
}

// The checkpoint, its vocabulary checked against (or rebuilt from) the data when there is data.
LoadedModel open_model(const ModelFlags& f, const Registry& registry, bool need_data, Corpus* corpus_out) {
    std::string data = f.data;
    if (need_data) data = find_data(data, f.level == "char" ? "tinyshakespeare" : "wikitext-2");
    Corpus corpus;
    if (!data.empty()) corpus = load_corpus(data, f.level);
    LoadedModel m = load_model(f.checkpoint, registry, data.empty() ? nullptr : &corpus, f.cell);
    if (!data.empty() && !m.from_pytorch && m.vocab.tokens() != corpus.vocab.tokens())
        throw FileError(fmt::format("{}: its vocabulary ({} tokens, {} level) is not the one of {} ({} tokens, {} level)",
                                    f.checkpoint, m.vocab.size(), m.level, data, corpus.vocab.size(), f.level));
    if (corpus_out) *corpus_out = std::move(corpus);
    return m;
}

struct EvalFlags {
    ModelFlags m;
    std::string split = "test";
    std::size_t bptt = 35, batch = 10;
    CacheOptions cache;
    bool tune = false;
    std::string precision = "fp32";
};

int cmd_eval(EvalFlags& e, const Registry& registry, Comm& comm) {
    const Precision precision = parse_precision(e.precision);
    if (precision != Precision::fp32 && (e.cache.size > 0 || e.tune))
        throw ConfigError("--precision bf16 applies to the plain evaluation, not to --cache-size or --cache-tune");
    set_threads(e.m.threads);
    Corpus corpus;
    LoadedModel m;
    agree(comm, [&] {  // under an MPI launcher: the processes share the streams of a plain evaluation
        if (comm.size() > 1 && (e.cache.size || e.tune))
            throw ConfigError("the continuous cache evaluates in one process: start it without an MPI launcher");
        if (e.batch < comm.size())
            throw ConfigError(fmt::format("--eval-batch-size {} is smaller than the {} processes", e.batch, comm.size()));
        m = open_model(e.m, registry, true, &corpus);
    });
    const Batched data = batchify(e.split == "test" ? corpus.test : corpus.valid, e.batch);
    const bool test_is_valid = e.split == "test" && corpus.test_name != "test";
    const std::string head = fmt::format("{} | {}{}", m.model->config.describe(), e.split,
                                         test_is_valid ? " (the valid split: no test split of its own)" : "");
    if (e.cache.size == 0 && !e.tune) {
        const double loss = evaluate(*m.model, data, e.bptt, 0, &comm, precision);
        if (comm.root()) fmt::print("{} | loss {:.4f} | ppl {:.2f}\n", head, loss, perplexity(loss));
        return 0;
    }
    if (e.cache.size == 0) throw ConfigError("--cache-tune needs --cache-size N");
    if (e.tune) {  // chosen on the validation split, reported on the split asked for
        const CacheTuning t = tune_cache(trace_for_cache(*m.model, batchify(corpus.valid, e.batch), e.bptt), e.cache.size,
                                         kThetas, kLambdas);
        fmt::print("cache tuning on valid (size {}): model ppl {:.2f}", e.cache.size, perplexity(t.model_loss));
        for (const auto& p : t.grid) fmt::print("{}theta {:g} lambda {:g}: ppl {:.2f}", "\n  ", p.theta, p.lambda, perplexity(p.loss));
        const bool edge = t.best.theta == kThetas.front() || t.best.theta == kThetas.back() ||
                          t.best.lambda == kLambdas.front() || t.best.lambda == kLambdas.back();
        fmt::print("\nchosen: theta {:g} lambda {:g} (valid ppl {:.2f}){}\n", t.best.theta, t.best.lambda,
                   perplexity(t.best_loss), edge ? "; at the edge of the grid: set --cache-theta and --cache-lambda "
                                                   "beyond it to look further" : "");
        e.cache = t.best;
    }
    const CacheTrace tr = trace_for_cache(*m.model, data, e.bptt);
    const double plain = cache_loss(tr, {}), cached = cache_loss(tr, e.cache);
    fmt::print("{} | loss {:.4f} | ppl {:.2f} | with cache (size {}, theta {:g}, lambda {:g}): loss {:.4f} | ppl {:.2f}\n",
               head, plain, perplexity(plain), e.cache.size, e.cache.theta, e.cache.lambda, cached, perplexity(cached));
    return 0;
}

struct GenerateFlags {
    ModelFlags m;
    std::size_t words = 100, top_k = 0;
    double temperature = 1.0;
    std::uint64_t seed = 1111;
    std::string prompt;
    bool interactive = false;
};

int cmd_generate(const GenerateFlags& g, const Registry& registry) {
    set_threads(g.m.threads);
    LoadedModel m = open_model(g.m, registry, false, nullptr);
    Sampler s(*m.model, m.vocab, m.level, g.seed, static_cast<float>(g.temperature), g.top_k);
    if (!g.interactive) {
        if (!g.prompt.empty()) {
            s.feed(encode_prompt(g.prompt, m.vocab, m.level));
            fmt::print("{}{}", g.prompt, m.level == "word" ? " " : "");
        }
        fmt::print("{}\n", s.generate(g.words));
        return 0;
    }
    std::string line;
    fmt::print(std::cerr, "> ");
    while (std::getline(std::cin, line)) {
        try {
            s.feed(encode_prompt(line + (m.level == "char" ? "\n" : ""), m.vocab, m.level));
            fmt::print("{}\n", s.generate(g.words));
        } catch (const Error& e) {  // a bad line (unknown character, invalid UTF-8) ends nothing but that line
            fmt::print(std::cerr, "error: {}\n", e.what());
        }
        std::fflush(stdout);
        fmt::print(std::cerr, "> ");
    }
    fmt::print(std::cerr, "\n");
    return 0;
}

// ---- gradcheck

struct GradcheckFlags {
    std::string cell = "LSTM";
    CellCheckOptions o;
    std::vector<std::string> cell_options;
};

int cmd_gradcheck(GradcheckFlags& g, const Registry& registry) {
    const CellFactory make = registry.cell(g.cell);
    if (!make)
        throw ConfigError(fmt::format("'{}' is registered as a whole model, not a cell: gradcheck checks cells", g.cell));
    for (const std::string& kv : g.cell_options) {
        const std::size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) throw ConfigError(fmt::format("--cell-option '{}' is not NAME=VALUE", kv));
        g.o.options.set(kv.substr(0, eq), kv.substr(eq + 1));
    }
    fmt::print("gradcheck {}: {} layer(s){}, {} steps, batch {}, input {}, hidden {}{}\n", g.cell, g.o.layers,
               g.o.bidirectional ? " bidirectional" : "", g.o.steps, g.o.batch, g.o.input, g.o.hidden,
               g.o.padded ? ", second sequence padded" : "");
    const GradcheckReport r = check_cell(make, g.o);
    fmt::print("{}", r.table());
    fmt::print("{}: {} (tolerance {:g})\n", r.ok ? "ok" : "FAIL", r.summary(), g.o.check.tolerance);
    return r.ok ? 0 : 1;
}

// The command line as a shell would read it back (for the metrics log).
std::string command_line(int argc, char** argv) {
    std::string out;
    for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                                             "-_./=,:+@%") == std::string::npos;
        std::string q = "'";
        for (char ch : a) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
        out += (i ? " " : "") + (plain ? a : q + "'");
    }
    return out;
}

// Prints an error to stderr; never throws (a closed stderr loses the message, not the exit status).
void report(const std::string& where, const std::string& what) {
    std::fprintf(stderr, "%s: error: %s\n", where.c_str(), what.c_str());
}

// The exit status of the exception being handled, printing its message (when `print`) as an error of `where`:
// 2 a usage error, 4 output that could not be written, 1 anything else.
int report_current(const std::string& where, bool print = true) {
    std::string what;
    int status = 1;
    try {
        throw;
    } catch (const SharedError& e) {  // every process has it: printed where it says
        if (!e.report) print = false;
        what = e.what();
        status = e.config ? 2 : 1;
    } catch (const ConfigError& e) {
        what = e.what();
        status = 2;
    } catch (const Error& e) {
        what = e.what();
    } catch (const std::bad_alloc&) {
        what = "out of memory (try a smaller --batch-size, --bptt or model)";
    } catch (const std::system_error& e) {  // fmt's failed writes to standard output
        what = fmt::format("cannot write the output: {}", e.what());
        status = 4;
    } catch (const std::exception& e) {
        what = e.what();
    }
    if (print) report(where, what);
    return status;
}

// Flushes stdout; a full or closed output is an error, not a silent success.
int finish_output(const std::string& program, int status) {
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        report(program, fmt::format("cannot write the output: {}", std::strerror(errno ? errno : EIO)));
        return status == 0 ? 4 : status;
    }
    return status;
}

// The eval command's flags.
void add_eval_flags(CLI::App& ecmd, EvalFlags& ev) {
    add_model_flags(ecmd, ev.m);
    ecmd.add_option("--split", ev.split, "test or valid")->capture_default_str()->check(CLI::IsMember({"test", "valid"}));
    ecmd.add_option("--bptt", ev.bptt, "steps per window")->capture_default_str()->check(bounds(1, 1 << 20));
    ecmd.add_option("--eval-batch-size,--eval_batch_size", ev.batch, "streams per batch")->capture_default_str()
        ->check(bounds(1, 1 << 20));
    ecmd.add_option("--cache-size", ev.cache.size, "continuous cache: (hidden state, next word) pairs per stream "
                    "(0: no cache)")->capture_default_str()->check(bounds(0, 1 << 20));
    ecmd.add_option("--cache-theta", ev.cache.theta, "continuous cache: flatness of its distribution")
        ->capture_default_str()->check(bounds(0, 100));
    ecmd.add_option("--cache-lambda", ev.cache.lambda, "continuous cache: its weight in the mixture")
        ->capture_default_str()->check(bounds(0, 1));
    ecmd.add_flag("--cache-tune", ev.tune, "choose theta and lambda by a grid search on the validation split");
    ecmd.add_option("--precision", ev.precision, "matrix products: fp32, or bf16 (the decoder in bf16, fp32 "
                    "accumulation; without the cache)")->capture_default_str();
}

// The generate command's flags.
void add_generate_flags(CLI::App& gcmd, GenerateFlags& gen) {
    add_model_flags(gcmd, gen.m);
    gcmd.add_option("--words", gen.words, "tokens to draw")->capture_default_str()->check(bounds(0, 1 << 30));
    gcmd.add_option("--temperature", gen.temperature, "softmax temperature (> 0)")->capture_default_str()
        ->check(bounds(0.0, 1e3, true));
    gcmd.add_option("--top-k,--top_k", gen.top_k, "draw among the k most likely (0: all)")->capture_default_str();
    gcmd.add_option("--seed", gen.seed, "random seed")->capture_default_str();
    gcmd.add_option("--prompt", gen.prompt, "text to condition on");
    gcmd.add_flag("--interactive", gen.interactive, "a prompt per line of standard input");
}

// The gradcheck command's flags.
void add_gradcheck_flags(CLI::App& ccmd, GradcheckFlags& gc, const Registry& registry) {
    ccmd.add_option("--model", gc.cell, fmt::format("the cell: {}", fmt::join(registry.names(), ", ")))->capture_default_str();
    ccmd.add_option("--nlayers", gc.o.layers, "layers")->capture_default_str()->check(bounds(1, 8));
    ccmd.add_option("--steps", gc.o.steps, "time steps")->capture_default_str()->check(bounds(1, 64));
    ccmd.add_option("--batch", gc.o.batch, "sequences")->capture_default_str()->check(bounds(1, 64));
    ccmd.add_option("--input", gc.o.input, "input features")->capture_default_str()->check(bounds(1, 256));
    ccmd.add_option("--nhid", gc.o.hidden, "hidden units")->capture_default_str()->check(bounds(1, 256));
    ccmd.add_flag("--bidirectional", gc.o.bidirectional, "both directions");
    ccmd.add_flag("--padded", gc.o.padded, "the second sequence one step shorter (masking)");
    ccmd.add_option("--seed", gc.o.seed, "random seed")->capture_default_str();
    ccmd.add_option("--tolerance", gc.o.check.tolerance, "largest accepted relative error")->capture_default_str()
        ->check(bounds(0.0, 1.0));
    ccmd.add_option("--cell-option,--cell_option", gc.cell_options, "NAME=VALUE for the cell (repeatable)");
}

// The options a train command runs with: the command line, a recipe's settings for the flags it leaves, or the
// resume point's settings (with what may change); the data folder found and the command line recorded.
TrainOptions resolve_train_options(const TrainOptions& train, const std::map<std::string, CLI::Option*>& train_flags,
                                   const Registry& registry, int argc, char** argv) {
    TrainOptions o = train;
    if (!o.recipe.empty() && o.resume.empty()) o = apply_recipe(train, train.recipe, given(train_flags));
    if (!o.adaptive_softmax && (train_flags.at("cutoffs")->count() || train_flags.at("div-value")->count()))
        throw ConfigError("--cutoffs and --div-value go with --adaptive-softmax");
    if (!o.resume.empty()) {
        const std::set<std::string> g = given(train_flags);
        o = merge_resume_options(read_resume_point(o.resume).options, train, g);
        if (!g.count("save")) {
            const std::string own = save_path_of_resume(o.resume);
            if (!own.empty()) o.save = own;
        }
    }
    registry.check(o.cell);
    o.data = find_data(o.data, o.level == "char" ? "tinyshakespeare" : "wikitext-2");
    o.command = command_line(argc, argv);
    return o;
}

}  // namespace

int run_lm(int argc, char** argv, const Registry& registry) {
    prefer_passive_openmp(argc, argv);  // may re-execute the program: before anything else happens
    const std::string& prog = registry.program;
    CLI::App app{fmt::format("{}: train, evaluate and sample recurrent language models with the conventions of the "
                             "PyTorch word-language-model example. Models: {}", prog, fmt::join(registry.names(), ", ")),
                 prog};
    app.require_subcommand(1);

    TrainOptions train;
    std::map<std::string, CLI::Option*> train_flags;
    CLI::App* tcmd = app.add_subcommand("train", "train a language model (defaults: the example's small LSTM on WikiText-2)");
    visit_train_options(train, Binder{*tcmd, train_flags});
    train_flags.at("model")->description(fmt::format("the cell (or model): {}", fmt::join(registry.names(), ", ")));

    EvalFlags ev;
    CLI::App* ecmd = app.add_subcommand("eval", "loss and perplexity of a checkpoint on a split");
    add_eval_flags(*ecmd, ev);

    GenerateFlags gen;
    CLI::App* gcmd = app.add_subcommand("generate", "sample text from a checkpoint");
    add_generate_flags(*gcmd, gen);

    GradcheckFlags gc;
    CLI::App* ccmd = app.add_subcommand("gradcheck", "gradient-check a registered cell through a few steps, stacked");
    add_gradcheck_flags(*ccmd, gc, registry);

    ReportOptions rep;
    CLI::App* rcmd = app.add_subcommand("report", "one self-contained HTML page: how a model trained and what its units do");
    add_report_flags(*rcmd, rep);

    if (argc > 1 && argv[1][0] != '-') {
        const std::string c = argv[1];
        if (c != "train" && c != "eval" && c != "generate" && c != "gradcheck" && c != "report") {
            fmt::print(stderr, "{}: error: unknown command '{}' (commands: train, eval, generate, gradcheck, report)\n", prog, c);
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        const std::vector<CLI::App*> sub = app.get_subcommands();
        const std::string where = sub.empty() ? prog : prog + " " + sub.front()->get_name();
        fmt::print(stderr, "{}: error: {}\nRun '{} --help' for the flags.\n", where, e.what(), where);
        return 2;
    }
    const std::string cmd = app.get_subcommands().front()->get_name();
    std::unique_ptr<Comm> comm;  // the processes an MPI launcher started (one without it)
    std::string where = prog + " " + cmd;
    // An error in one process of several: it says which, and stops the others (they would wait for it forever).
    auto fail = [&](int status) {
        if (comm && comm->size() > 1) comm->abort(status);
        return status;
    };
    try {
        int status = 0;
        comm = make_world_comm();
        if (comm->size() > 1) where = fmt::format("{} (rank {} of {})", where, comm->rank(), comm->size());
        if (comm->size() > 1 && cmd != "train" && cmd != "eval")
            agree(*comm, [&] { throw ConfigError(cmd + " runs in one process: start it without an MPI launcher"); });
        if (cmd == "train") {
            std::unique_ptr<Trainer> trainer;
            agree(*comm, [&] {  // every process has the same options: a bad one stops all, said once
                trainer = std::make_unique<Trainer>(resolve_train_options(train, train_flags, registry, argc, argv),
                                                    registry, std::cout, comm.get());
            });
            const TrainResult r = trainer->run();
            status = r.stopped_non_finite ? 3 : 0;
        } else if (cmd == "eval") {
            status = cmd_eval(ev, registry, *comm);
        } else if (cmd == "generate") {
            status = cmd_generate(gen, registry);
        } else if (cmd == "report") {
            make_report(rep, registry, std::cout);
        } else {
            status = cmd_gradcheck(gc, registry);
        }
        return finish_output(prog, status);
    } catch (const SharedError&) {  // every process has it: no process needs stopping
        return report_current(where);
    } catch (...) {
        return fail(report_current(where));
    }
}

}  // namespace xtgrad
