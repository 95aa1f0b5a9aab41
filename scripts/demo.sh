#!/usr/bin/env bash
# The story behind `make demo`, on the lab hosts `make lab-up` started: the
# commands an operator runs, in order, with the outcome each one should have.
#
#   site.yml converged -> models registered (v1 good, v2 weak, v3 unportable)
#   -> deploy v1 (passes) -> the training pipeline (Prefect, train.yml): new
#      data lands -> a run registers v4 with its provenance; the same data
#      again -> skipped -> traffic, then a drifted batch -> drift.yml (finds it;
#      ModelDataDrift later starts a run, skipped: its data is unchanged)
#   -> deploy v2 (refused by the gate, v1 keeps serving)
#   -> deploy v3 (passes the gate, fails /ready, rolled back to v1)
#   -> deploy v4, the training pipeline's candidate (gate, approval, rolled out)
#   -> a local LLM: SmolLM2 registered from its GGUF header, deployed with the
#      same deploy_model.yml (hardware fit on each serving host, its evaluation
#      set answered by its own llama-server, approval, alias, restart), a chat
#      through the endpoint, chat traffic then long documents -> drift.yml finds
#      the shift in prompt lengths, a declaration that does not fit (256M,
#      8192 x 4 slots) refused before any change -> audit.yml
#
# Every step's output goes to .cache/demo/logs/; the summary at the end says
# what passed, what was refused, and where to look. Exit status: 0 when every
# step had the outcome the story expects.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
inventory="inventories/lab/hosts.yml"
data="$root/.cache/demo"
logs="$data/logs"
mkdir -p "$logs"
approvals='{"lifecycle_approvals": [{"approver": "ml-lead", "comment": "demo"}]}'

results=()
unexpected=0

# step NAME EXPECT(ok|fail) GREP ansible-playbook-args...: runs one playbook,
# checks its exit status and that its output says GREP (the outcome's words).
step() {
  local name="$1" expect="$2" says="$3" log rc outcome start
  shift 3
  log="$logs/$(echo "$name" | tr ' /' '__').log"
  start=$(date +%s)
  echo "=== $name: ansible-playbook $*"
  ansible-playbook -i "$inventory" "$@" >"$log" 2>&1
  rc=$?
  outcome=$([ "$rc" -eq 0 ] && echo ok || echo fail)
  if [ "$outcome" = "$expect" ] && { [ -z "$says" ] || grep -q -- "$says" "$log"; }; then
    results+=("$(printf '%-34s %-6s as expected (%ss)' "$name" "$outcome" $(($(date +%s) - start)))")
  else
    unexpected=$((unexpected + 1))
    results+=("$(printf '%-34s %-6s UNEXPECTED, wanted %s%s - see %s' "$name" "$outcome" "$expect" \
      "${says:+ saying \"$says\"}" "$log")")
    tail -n 25 "$log"
  fi
  grep -E '^(PLAY RECAP|[a-z0-9.-]+ +: ok=)' "$log" || true
}

# json_value FILE KEY: one value of a JSON file the demo's playbooks wrote (empty when missing).
json_value() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
version() { json_value "$data/versions.json" "$1"; }

step "site.yml converge" ok "" playbooks/site.yml
step "register the demo models" ok "" playbooks/demo_models.yml
v1=$(version good)
v2=$(version weak)
v3=$(version unportable)
step "deploy v$v1 (good)" ok "is production" playbooks/deploy_model.yml -e model=breast-cancer -e version="$v1" -e "$approvals"
step "train.yml deploys the pipeline" ok "" playbooks/train.yml
step "new data -> the pipeline trains" ok "registered breast-cancer version" playbooks/demo_training_data.yml
v4=$(json_value "$data/trained.json" trained)
step "train.yml -e run_now: same data" ok "breast-cancer: Skipped" playbooks/train.yml -e run_now=true
step "traffic" ok "" playbooks/demo_traffic.yml
step "traffic, drifted batch" ok "" playbooks/demo_traffic.yml -e demo_drifted=true
step "drift.yml finds the drift" ok "WARNING drift found" playbooks/drift.yml
step "deploy v$v2 (weak)" fail "was refused and not deployed" \
  playbooks/deploy_model.yml -e model=breast-cancer -e version="$v2" -e "$approvals"
step "deploy v$v3 (unportable)" fail "Rolled back" \
  playbooks/deploy_model.yml -e model=breast-cancer -e version="$v3" -e "$approvals"
step "deploy v$v4 (the pipeline's)" ok "is production" \
  playbooks/deploy_model.yml -e model=breast-cancer -e version="$v4" -e "$approvals"
step "register the LLM (smollm2)" ok "" playbooks/demo_llm.yml
step "deploy smollm2 v1 (fit, eval set)" ok "is production" \
  playbooks/deploy_model.yml -e model=smollm2 -e version=1 -e "$approvals"
step "chat with smollm2" ok "smollm2 answered" playbooks/demo_chat.yml
step "LLM traffic" ok "" playbooks/demo_llm_traffic.yml
step "LLM traffic, long prompts" ok "" playbooks/demo_llm_traffic.yml -e demo_drifted=true
step "drift.yml finds the prompt shift" ok "smollm2 ([^)]*prompt_tokens" playbooks/drift.yml
step "smollm2 at 8192 x 4 in 256M" fail "does not fit" playbooks/demo_llm_unfit.yml
step "audit.yml verifies the chains" ok "" playbooks/audit.yml

# Where to look: addresses of the lab hosts on this machine's Docker network.
address() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1" 2>/dev/null; }
group() {
  ansible-inventory -i "$inventory" --list 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin).get(sys.argv[1], {}).get("hosts", [])))' "$1"
}
mlflow_host=$(group mlflow)
serving_hosts=$(group serving)
echo
echo "================ demo summary ================"
printf '%s\n' "${results[@]}"
echo
echo "MLflow UI:   https://$(address "$mlflow_host")/  (user admin, password in .cache/lab-secrets/mlflow_admin;"
echo "             self-signed certificate: .cache/lab-secrets/mlflow-server.crt)"
echo "Prometheus:  http://$(address "$mlflow_host"):9090/alerts    Alertmanager: http://$(address "$mlflow_host"):9093/"
for host in $(group orchestrator); do
  echo "Prefect UI:  https://$(address "$host"):4443/  (the training pipeline's runs; user prefect, password in"
  echo "             .cache/lab-secrets/prefect; certificate .cache/lab-secrets/prefect-server.crt)"
done
for host in $serving_hosts; do
  echo "Model:       http://$(address "$host"):8080/v1/models  ($host; /v1/predict needs the bearer token in .cache/lab-secrets/model_api_token)"
  echo "LLM chat:    http://$(address "$host"):8090/v1/chat/completions  ($host), for example:"
  echo "  curl -sS http://$(address "$host"):8090/v1/chat/completions -H \"Authorization: Bearer \$(cat .cache/lab-secrets/model_api_token)\" \\"
  echo "    -H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":32}'"
done
echo "Reports:     drift $root/reports/drift/, audit heads $root/audit-heads/, step logs $logs/"
echo "=============================================="
if [ "$unexpected" -gt 0 ]; then
  echo "demo: $unexpected step(s) did not go as the story expects"
  exit 1
fi
echo "demo: every step went as expected"
