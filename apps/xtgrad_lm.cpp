// xtgrad-lm: train, evaluate, sample and gradient-check word- and character-level language models with the
// flags and conventions of the PyTorch word-language-model example. It is the language-model library's command
// line with the built-in cells registered, exactly what a user's program with its own cells gets.
#include <xtgrad/lm.hpp>

int main(int argc, char** argv) { return xtgrad::run_lm(argc, argv, xtgrad::builtin_registry()); }
