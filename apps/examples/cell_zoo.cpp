// Five published cells, each written in one header with public ops only, registered next to the built-in cells
// with the whole command line of xtgrad-lm (train, eval, generate, gradcheck):
//   c++ -std=c++17 -O2 cell_zoo.cpp $(pkg-config --cflags --libs xtgrad-lm) -o cell_zoo
//   ./cell_zoo gradcheck --model LN_LSTM && ./cell_zoo train --model ATTN_LSTM --cell-option k=4 --data DIR
#include <xtgrad/lm.hpp>

#include "attn_lstm.hpp"
#include "indrnn.hpp"
#include "ln_lstm.hpp"
#include "peephole_lstm.hpp"
#include "sru.hpp"

int main(int argc, char** argv) {
    xtgrad::Registry models = xtgrad::builtin_registry();
    models.program = "cell_zoo";
    models.add_cell("PEEPHOLE_LSTM", xtgrad::cell_factory<zoo::PeepholeLSTMCell>(), "peephole LSTM (Gers et al. 2002)");
    models.add_cell("LN_LSTM", xtgrad::cell_factory<zoo::LNLSTMCell>(), "layer-normalised LSTM (Ba et al. 2016)");
    models.add_cell("INDRNN", xtgrad::cell_factory<zoo::IndRNNCell>(), "IndRNN with relu (Li et al. 2018)");
    models.add_cell("SRU", xtgrad::cell_factory<zoo::SRUCell>(), "simple recurrent unit (Lei & Zhang 2017)");
    models.add_cell("ATTN_LSTM", xtgrad::cell_factory<zoo::AttnLSTMCell>(),
                    "LSTM attending over its last k states (--cell-option k=N, default 8)");
    return xtgrad::run_lm(argc, argv, models);
}
