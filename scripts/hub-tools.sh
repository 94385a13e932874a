# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: makes sure a real JupyterHub,
# jupyter-server and configurable-http-proxy are installed, then exports
# JUPYTERHUB_BIN_DIRS (a PATH-style list the real-hub tests and the demo
# run the hub with).
#
# Installs into the repository (both ignored by git):
#   .venv/          python3 -m venv + pip install $JUPYTERHUB_PIP_SPECS
#   .tools/         npm install $CHP_NPM_SPEC
# and does nothing when those are already there with the same versions.
# A JUPYTERHUB_BIN_DIRS already set that holds jupyterhub and
# configurable-http-proxy is used as it is.

# The tests run against the latest JupyterHub, jupyter-server and ipykernel
# (for the tests that run code in a kernel) on PyPI (a
# fresh machine installs them; an existing .venv is kept until the specs
# change). Pin with e.g. JUPYTERHUB_PIP_SPECS="jupyterhub==6.1.1 jupyter-server".
# configurable-http-proxy is pinned: 5.3.0 is checked to run on the Node.js
# 20 these machines have (it asks for 22 but only warns).
: "${JUPYTERHUB_PIP_SPECS:=jupyterhub jupyter-server ipykernel}"
: "${CHP_NPM_SPEC:=configurable-http-proxy@5.3.0}"

hub_tools_log() { printf '[hub-tools] %s\n' "$*" >&2; }

# True when every directory list entry together provides both programs.
hub_tools_present() {
    local dirs="$1" have_hub="" have_chp="" dir
    local IFS=:
    for dir in $dirs; do
        [[ -x "$dir/jupyterhub" ]] && have_hub=1
        [[ -x "$dir/configurable-http-proxy" ]] && have_chp=1
    done
    [[ -n "$have_hub" && -n "$have_chp" ]]
}

ensure_hub_tools() {
    local repo="$1"
    if [[ -n "${JUPYTERHUB_BIN_DIRS:-}" ]] && hub_tools_present "$JUPYTERHUB_BIN_DIRS"; then
        hub_tools_log "using JUPYTERHUB_BIN_DIRS=$JUPYTERHUB_BIN_DIRS"
        return 0
    fi

    local venv="$repo/.venv" tools="$repo/.tools"
    local stamp="$venv/.hub-tools-installed"
    if [[ ! -x "$venv/bin/jupyterhub" || "$(cat "$stamp" 2>/dev/null)" != "$JUPYTERHUB_PIP_SPECS" ]]; then
        command -v python3 >/dev/null || { hub_tools_log "python3 is required"; return 1; }
        if [[ ! -x "$venv/bin/python" ]]; then
            hub_tools_log "creating $venv"
            python3 -m venv "$venv"
        fi
        hub_tools_log "pip install $JUPYTERHUB_PIP_SPECS"
        # shellcheck disable=SC2086 # the specs are a word list on purpose
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $JUPYTERHUB_PIP_SPECS
        printf '%s\n' "$JUPYTERHUB_PIP_SPECS" >"$stamp"
    fi

    local chp_stamp="$tools/.hub-tools-installed"
    if [[ ! -x "$tools/node_modules/.bin/configurable-http-proxy" || "$(cat "$chp_stamp" 2>/dev/null)" != "$CHP_NPM_SPEC" ]]; then
        command -v npm >/dev/null || { hub_tools_log "npm (Node.js) is required"; return 1; }
        hub_tools_log "npm install $CHP_NPM_SPEC"
        mkdir -p "$tools"
        # configurable-http-proxy 5.3 asks for Node >= 22.12 but runs on 20:
        # npm only warns about the engine.
        npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "$CHP_NPM_SPEC" >&2
        printf '%s\n' "$CHP_NPM_SPEC" >"$chp_stamp"
    fi

    export JUPYTERHUB_BIN_DIRS="$venv/bin:$tools/node_modules/.bin"
    hub_tools_log "JUPYTERHUB_BIN_DIRS=$JUPYTERHUB_BIN_DIRS"
}
