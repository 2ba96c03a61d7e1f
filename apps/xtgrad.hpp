// The xtgrad framework in one include: arrays, the tape and its ops, gradient checking, layers and cells, the
// recurrent layer, truncated BPTT, optimisers, schedules and clipping. Reached as <xtgrad/xtgrad.hpp>; link with
// `pkg-config --cflags --libs xtgrad`.
#pragma once

#include <xtgrad/layers/adaptive_softmax.hpp>
#include <xtgrad/layers/cell.hpp>
#include <xtgrad/layers/dropout.hpp>
#include <xtgrad/layers/embedding.hpp>
#include <xtgrad/layers/gru.hpp>
#include <xtgrad/layers/layer_norm.hpp>
#include <xtgrad/layers/linear.hpp>
#include <xtgrad/layers/lstm.hpp>
#include <xtgrad/layers/module.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/layers/rnn_cell.hpp>
#include <xtgrad/layers/tbptt.hpp>
#include <xtgrad/lib/array.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/lib/safetensors.hpp>
#include <xtgrad/lib/state_dict.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/optim/schedule.hpp>
#include <xtgrad/tape/context.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/ops.hpp>
#include <xtgrad/tape/tape.hpp>
