// The language-model library: everything a program needs to register its own cells or models and get the whole
// command line of xtgrad-lm (train, eval, generate, gradcheck, report), or to use the trainer's parts alone.
// Reached as <xtgrad/lm.hpp>; link with `pkg-config --cflags --libs xtgrad-lm`.
#pragma once

#include <xtgrad/xtgrad.hpp>

#include <xtgrad/apps/lm/cache.hpp>
#include <xtgrad/apps/lm/cellcheck.hpp>
#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/cli.hpp>
#include <xtgrad/apps/lm/config.hpp>
#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/distributed.hpp>
#include <xtgrad/apps/lm/evaluate.hpp>
#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/apps/lm/metrics.hpp>
#include <xtgrad/apps/lm/model.hpp>
#include <xtgrad/apps/lm/nan_policy.hpp>
#include <xtgrad/apps/lm/options.hpp>
#include <xtgrad/apps/lm/registry.hpp>
#include <xtgrad/apps/lm/trainer.hpp>
