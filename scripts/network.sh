#!/usr/bin/env bash
# A local Fabric v3 network for BlockFedML, from Fabric's release binaries, without Docker.
#
#   scripts/network.sh up                 crypto, channel block, 3 raft orderers, 3 peers, channel joined
#   scripts/network.sh deploy             the blockfedml chaincode as a service (CCaaS)
#   scripts/network.sh down               stop what up/deploy started (recorded PIDs only), delete the run folder
#   scripts/network.sh status             which recorded processes are alive
#   scripts/network.sh stop NODE          stop one node (orderer, orderer2, orderer3, peer0.Org1, ...), keep its state
#   scripts/network.sh start NODE         start a stopped node again from its state (it catches up)
#   scripts/network.sh channel-join ORG   join ORG's peer (Org1, Org2, Org3) to the channel
#   scripts/network.sh channel-list ORG   channels ORG's peer has joined
#
# Environment: FABRIC_BIN (folder with peer, orderer, configtxgen, cryptogen, osnadmin;
# required), FABRIC_RUN_DIR (default runs/fabric, outside git), BLOCKFEDML_PYTHON
# (interpreter that runs the chaincode server; default .venv/bin/python).
# Every node listens on 127.0.0.1 with TLS; readiness is read from the nodes'
# metrics (raft leader, gossip membership), never guessed with sleeps.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NETWORK_DIR="$REPO/network"
RUN_DIR="${FABRIC_RUN_DIR:-$REPO/runs/fabric}"
CHANNEL="fedchannel"
CC_NAME="blockfedml"
CC_LABEL="blockfedml_1.0"
CC_ADDRESS="127.0.0.1:9999"
ORGS=(Org1 Org2 Org3)
ORDERERS=(1 2 3)             # a raft cluster of three: ordering goes on when one is lost
ORDERER_PORT=7050            # orderer 1; orderer N listens on 7050 + 100 (N - 1)
READY_TIMEOUT="${FABRIC_READY_TIMEOUT:-60}"
if [[ -n "${BLOCKFEDML_PYTHON:-}" ]]; then PYTHON="$BLOCKFEDML_PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"
else PYTHON="python3"; fi

CRYPTO="$RUN_DIR/crypto"
ORDERER_DIR="$CRYPTO/ordererOrganizations/blockfedml.local"
ORDERER_TLS="$ORDERER_DIR/orderers/orderer.blockfedml.local/tls"   # orderer 1's (the same CA signs all three)
ORDERER_ADMIN_TLS="$ORDERER_DIR/users/Admin@blockfedml.local/tls"
BLOCK="$RUN_DIR/channel/$CHANNEL.block"

die() { echo "error: $*" >&2; exit 1; }
log() { echo "[network] $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---- orderers, organizations and ports --------------------------------------
orderer_name() { if [[ "$1" == 1 ]]; then echo orderer; else echo "orderer$1"; fi; }  # pid/log name, host name
orderer_port() { echo $((7050 + 100 * ($1 - 1))); }        # 7050, 7150, 7250
orderer_admin_port() { echo $((7053 + 100 * ($1 - 1))); }  # 7053, 7153, 7253
orderer_ops_port() { case "$1" in 1) echo 9443 ;; *) echo $((9445 + $1)) ;; esac; }  # 9443, 9447, 9448
orderer_tls() { echo "$ORDERER_DIR/orderers/$(orderer_name "$1").blockfedml.local/tls"; }
org_index() { case "$1" in Org1) echo 1 ;; Org2) echo 2 ;; Org3) echo 3 ;; *) die "unknown organization '$1' (Org1, Org2 or Org3)" ;; esac; }
org_domain() { echo "org$(org_index "$1").blockfedml.local"; }
peer_port() { echo $((6051 + 1000 * $(org_index "$1"))); }   # 7051, 8051, 9051
peer_ops_port() { echo $((9443 + $(org_index "$1"))); }      # 9444, 9445, 9446
peer_home() { echo "$RUN_DIR/peers/$1"; }
org_dir() { echo "$CRYPTO/peerOrganizations/$(org_domain "$1")"; }
peer_tls_ca() { echo "$(org_dir "$1")/peers/peer0.$(org_domain "$1")/tls/ca.crt"; }

# Environment of the `peer` CLI acting as ORG's admin against ORG's peer.
as_admin() {
    local org="$1"
    export FABRIC_CFG_PATH="$(peer_home "$org")"
    export CORE_PEER_LOCALMSPID="${org}MSP"
    export CORE_PEER_MSPCONFIGPATH="$(org_dir "$org")/users/Admin@$(org_domain "$org")/msp"
    export CORE_PEER_ADDRESS="127.0.0.1:$(peer_port "$org")"
    export CORE_PEER_TLS_ENABLED=true
    export CORE_PEER_TLS_ROOTCERT_FILE="$(peer_tls_ca "$org")"
}

# ---- checks ------------------------------------------------------------------
check_fabric_bin() {
    [[ -n "${FABRIC_BIN:-}" ]] || die "FABRIC_BIN is not set; point it at the bin/ folder of a Fabric v3 release (https://github.com/hyperledger/fabric/releases), e.g. export FABRIC_BIN=/opt/fabric/bin"
    [[ -d "$FABRIC_BIN" ]] || die "FABRIC_BIN=$FABRIC_BIN is not a folder"
    local missing=()
    for tool in peer orderer configtxgen cryptogen osnadmin; do
        [[ -x "$FABRIC_BIN/$tool" ]] || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "FABRIC_BIN=$FABRIC_BIN lacks ${missing[*]}; it must hold Fabric's release binaries (peer, orderer, configtxgen, cryptogen, osnadmin)"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports() {
    local port busy=()
    for port in 7050 7053 9443 7150 7153 9447 7250 7253 9448 7051 7052 8051 8052 9051 9052 9444 9445 9446 "${CC_ADDRESS##*:}"; do
        if port_in_use "$port"; then busy+=("$port"); fi
    done
    ((${#busy[@]} == 0)) || die "port(s) ${busy[*]} on 127.0.0.1 are taken; stop what listens there (ss -ltnp) or run 'scripts/network.sh down' if it is an earlier network"
}

# ---- processes ----------------------------------------------------------------
# start NAME COMMAND...: run in the background, log to logs/NAME.log, record the PID.
start() {
    local name="$1"; shift
    mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids"
    nohup "$@" >"$RUN_DIR/logs/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/pids/$name.pid"
}

alive() { local pid; pid="$(cat "$1" 2>/dev/null)" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }

any_alive() {
    local f
    for f in "$RUN_DIR"/pids/*.pid; do [[ -e "$f" ]] && alive "$f" && return 0; done
    return 1
}

# wait_for WHAT LOG COMMAND...: poll COMMAND every 0.2 s until it succeeds or READY_TIMEOUT.
wait_for() {
    local what="$1" logname="$2"; shift 2
    local deadline=$((SECONDS + READY_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${READY_TIMEOUT}s waiting for $what; last lines of $RUN_DIR/logs/$logname.log:" >&2
            tail -n 15 "$RUN_DIR/logs/$logname.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# metric PORT REGEX: a node's Prometheus metrics match REGEX (read whole first: with pipefail,
# `curl | grep -q` fails when grep stops reading early).
metric() { local out; out="$(curl -sf "http://127.0.0.1:$1/metrics")" && grep -Eq "$2" <<<"$out"; }

# ---- up -----------------------------------------------------------------------
cmd_up() {
    check_fabric_bin
    if any_alive; then die "a network is already running from $RUN_DIR; run 'scripts/network.sh down' first"; fi
    check_ports
    local t0; t0="$(now)"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR/channel"

    log "crypto material (cryptogen) and channel genesis block (configtxgen)"
    "$FABRIC_BIN/cryptogen" generate --config="$NETWORK_DIR/crypto-config.yaml" --output="$CRYPTO" >/dev/null
    cp "$NETWORK_DIR/configtx.yaml" "$RUN_DIR/configtx.yaml"
    "$FABRIC_BIN/configtxgen" -configPath "$RUN_DIR" -profile BlockFedMLChannel \
        -outputBlock "$BLOCK" -channelID "$CHANNEL" 2>"$RUN_DIR/configtxgen.log" \
        || { cat "$RUN_DIR/configtxgen.log" >&2; die "configtxgen failed"; }

    local n
    for n in "${ORDERERS[@]}"; do start_orderer "$n"; done
    start_peers

    log "orderers join $CHANNEL (osnadmin), waiting for a raft leader that all three follow"
    for n in "${ORDERERS[@]}"; do
        wait_for "$(orderer_name "$n")'s admin endpoint" "$(orderer_name "$n")" osnadmin_cmd "$n" channel list
        osnadmin_cmd "$n" channel join --channelID "$CHANNEL" --config-block "$BLOCK" >/dev/null
    done
    wait_for "a raft leader on $CHANNEL" orderer raft_leader
    for n in "${ORDERERS[@]}"; do
        wait_for "$(orderer_name "$n") to follow the raft leader" "$(orderer_name "$n")" \
            metric "$(orderer_ops_port "$n")" "^consensus_etcdraft_leader_changes\\{channel=\"$CHANNEL\"\\} [1-9]"
    done

    local org
    for org in "${ORGS[@]}"; do
        wait_for "peer0.$org's operations endpoint" "peer0.$org" metric "$(peer_ops_port "$org")" "^go_goroutines"
        channel_join "$org"
    done
    log "waiting until every peer knows the other organizations' peers (gossip)"
    for org in "${ORGS[@]}"; do
        wait_for "gossip membership of peer0.$org" "peer0.$org" metric "$(peer_ops_port "$org")" \
            "^gossip_membership_total_peers_known\\{channel=\"$CHANNEL\"\\} $(( ${#ORGS[@]} - 1 ))"
    done
    write_profile
    log "network up in $(elapsed "$t0") s; profile: $RUN_DIR/network.json"
}

# The raft leader, if any: the number of the orderer whose metrics say it leads.
raft_leader() {
    local n
    for n in "${ORDERERS[@]}"; do
        if metric "$(orderer_ops_port "$n")" "^consensus_etcdraft_is_leader\\{channel=\"$CHANNEL\"\\} 1"; then
            echo "$n"; return 0
        fi
    done
    return 1
}

# osnadmin_cmd N ARGS...: osnadmin against orderer N's admin endpoint.
osnadmin_cmd() {
    local n="$1"; shift
    "$FABRIC_BIN/osnadmin" "$@" -o "127.0.0.1:$(orderer_admin_port "$n")" --ca-file "$ORDERER_TLS/ca.crt" \
        --client-cert "$ORDERER_ADMIN_TLS/client.crt" --client-key "$ORDERER_ADMIN_TLS/client.key"
}

# start_orderer N: orderer N with its state in orderers/<name> (kept across a stop and start).
start_orderer() {
    local n="$1" name home tls port
    name="$(orderer_name "$n")" home="$RUN_DIR/orderers/$(orderer_name "$n")" tls="$(orderer_tls "$n")"
    port="$(orderer_port "$n")"
    mkdir -p "$home"
    cp "$NETWORK_DIR/config/orderer.yaml" "$home/orderer.yaml"
    log "starting $name.blockfedml.local on 127.0.0.1:$port"
    start "$name" env \
        FABRIC_CFG_PATH="$home" \
        ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 \
        ORDERER_GENERAL_LISTENPORT="$port" \
        ORDERER_GENERAL_LOCALMSPID=OrdererMSP \
        ORDERER_GENERAL_LOCALMSPDIR="$ORDERER_DIR/orderers/$name.blockfedml.local/msp" \
        ORDERER_GENERAL_TLS_ENABLED=true \
        ORDERER_GENERAL_TLS_PRIVATEKEY="$tls/server.key" \
        ORDERER_GENERAL_TLS_CERTIFICATE="$tls/server.crt" \
        ORDERER_GENERAL_TLS_ROOTCAS="[$tls/ca.crt]" \
        ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$tls/server.crt" \
        ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$tls/server.key" \
        ORDERER_GENERAL_CLUSTER_ROOTCAS="[$tls/ca.crt]" \
        ORDERER_GENERAL_BOOTSTRAPMETHOD=none \
        ORDERER_CHANNELPARTICIPATION_ENABLED=true \
        ORDERER_ADMIN_LISTENADDRESS="127.0.0.1:$(orderer_admin_port "$n")" \
        ORDERER_ADMIN_TLS_ENABLED=true \
        ORDERER_ADMIN_TLS_CERTIFICATE="$tls/server.crt" \
        ORDERER_ADMIN_TLS_PRIVATEKEY="$tls/server.key" \
        ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$tls/ca.crt]" \
        ORDERER_OPERATIONS_LISTENADDRESS="127.0.0.1:$(orderer_ops_port "$n")" \
        ORDERER_METRICS_PROVIDER=prometheus \
        ORDERER_FILELEDGER_LOCATION="$home/data" \
        ORDERER_CONSENSUS_WALDIR="$home/data/etcdraft/wal" \
        ORDERER_CONSENSUS_SNAPDIR="$home/data/etcdraft/snapshot" \
        "$FABRIC_BIN/orderer"
}

start_peers() {
    local org
    for org in "${ORGS[@]}"; do start_peer "$org"; done
}

# start_peer ORG: ORG's peer with its state in peers/ORG (kept across a stop and start).
start_peer() {
    local org="$1" domain port home node
    domain="$(org_domain "$org")" port="$(peer_port "$org")" home="$(peer_home "$org")"
    node="$(org_dir "$org")/peers/peer0.$domain"
    mkdir -p "$home"
    # The only per-run edit of the shared core.yaml: where the CCaaS builder is.
    sed "s#/opt/blockfedml/builders/ccaas#$NETWORK_DIR/builders/ccaas#" \
        "$NETWORK_DIR/config/core.yaml" >"$home/core.yaml"
    log "starting peer0.$domain on 127.0.0.1:$port"
    start "peer0.$org" env \
        FABRIC_CFG_PATH="$home" \
        CORE_PEER_ID="peer0.$domain" \
        CORE_PEER_ADDRESS="127.0.0.1:$port" \
        CORE_PEER_LISTENADDRESS="127.0.0.1:$port" \
        CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$((port + 1))" \
        CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$((port + 1))" \
        CORE_PEER_GOSSIP_BOOTSTRAP="127.0.0.1:$port" \
        CORE_PEER_GOSSIP_EXTERNALENDPOINT="127.0.0.1:$port" \
        CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s \
        CORE_PEER_LOCALMSPID="${org}MSP" \
        CORE_PEER_MSPCONFIGPATH="$node/msp" \
        CORE_PEER_TLS_ENABLED=true \
        CORE_PEER_TLS_CERT_FILE="$node/tls/server.crt" \
        CORE_PEER_TLS_KEY_FILE="$node/tls/server.key" \
        CORE_PEER_TLS_ROOTCERT_FILE="$node/tls/ca.crt" \
        CORE_PEER_FILESYSTEMPATH="$home/data" \
        CORE_LEDGER_SNAPSHOTS_ROOTDIR="$home/data/snapshots" \
        CORE_OPERATIONS_LISTENADDRESS="127.0.0.1:$(peer_ops_port "$org")" \
        CORE_METRICS_PROVIDER=prometheus \
        "$FABRIC_BIN/peer" node start
}

channel_join() {
    local org="$1"
    ( as_admin "$org"; "$FABRIC_BIN/peer" channel join -b "$BLOCK" ) >>"$RUN_DIR/logs/admin.log" 2>&1 \
        || { tail -n 5 "$RUN_DIR/logs/admin.log" >&2; die "peer0.$org could not join $CHANNEL"; }
    log "peer0.$org joined $CHANNEL"
}

# network.json: what an SDK needs to reach each organization's Gateway.
write_profile() {
    local org domain sep="" orgs=""
    for org in "${ORGS[@]}"; do
        domain="$(org_domain "$org")"
        orgs+="$sep
    {\"name\": \"$org\", \"msp_id\": \"${org}MSP\", \"domain\": \"$domain\",
     \"peer_endpoint\": \"127.0.0.1:$(peer_port "$org")\", \"server_name\": \"peer0.$domain\",
     \"tls_ca\": \"$(peer_tls_ca "$org")\",
     \"admin_msp\": \"$(org_dir "$org")/users/Admin@$domain/msp\",
     \"user_msp\": \"$(org_dir "$org")/users/User1@$domain/msp\"}"
        sep=","
    done
    cat >"$RUN_DIR/network.json" <<EOF
{"kind": "fabric", "channel": "$CHANNEL", "chaincode": "$CC_NAME",
 "orderer": {"endpoint": "127.0.0.1:$ORDERER_PORT", "tls_ca": "$ORDERER_TLS/ca.crt",
             "endpoints": ["127.0.0.1:7050", "127.0.0.1:7150", "127.0.0.1:7250"]},
 "orgs": [$orgs
 ]}
EOF
}

# ---- deploy -------------------------------------------------------------------
cmd_deploy() {
    check_fabric_bin
    [[ -f "$RUN_DIR/network.json" ]] && raft_leader >/dev/null \
        || die "no running network in $RUN_DIR; run 'scripts/network.sh up' first"
    local t0 pkg pkg_id org pids=() failed=0 orderer
    t0="$(now)"
    orderer="127.0.0.1:$(orderer_port "$(raft_leader)")"
    pkg="$(package_chaincode)"
    pkg_id="$(as_admin Org1; "$FABRIC_BIN/peer" lifecycle chaincode calculatepackageid "$pkg")"
    echo "$pkg_id" >"$RUN_DIR/chaincode/package_id"

    start_chaincode_server "$pkg_id"
    if (as_admin Org1; "$FABRIC_BIN/peer" lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME") >/dev/null 2>&1; then
        log "$CC_NAME is already committed on $CHANNEL; chaincode server restarted"
    else
        log "installing $CC_LABEL ($pkg_id) on every peer"
        for org in "${ORGS[@]}"; do
            (as_admin "$org"; "$FABRIC_BIN/peer" lifecycle chaincode install "$pkg") >>"$RUN_DIR/logs/admin.log" 2>&1 &
            pids+=($!)
        done
        wait_all "chaincode install" "${pids[@]}"
        log "approving for each organization"
        pids=()
        for org in "${ORGS[@]}"; do
            (as_admin "$org"; "$FABRIC_BIN/peer" lifecycle chaincode approveformyorg -o "$orderer" \
                --tls --cafile "$ORDERER_TLS/ca.crt" --channelID "$CHANNEL" --name "$CC_NAME" \
                --version 1.0 --package-id "$pkg_id" --sequence 1) >>"$RUN_DIR/logs/admin.log" 2>&1 &
            pids+=($!)
        done
        wait_all "chaincode approval" "${pids[@]}"
        log "committing (endorsement policy: the channel's MAJORITY Endorsement, 2 of 3)"
        local peers=()
        for org in "${ORGS[@]}"; do
            peers+=(--peerAddresses "127.0.0.1:$(peer_port "$org")" --tlsRootCertFiles "$(peer_tls_ca "$org")")
        done
        (as_admin Org1; "$FABRIC_BIN/peer" lifecycle chaincode commit -o "$orderer" \
            --tls --cafile "$ORDERER_TLS/ca.crt" --channelID "$CHANNEL" --name "$CC_NAME" \
            --version 1.0 --sequence 1 "${peers[@]}") >>"$RUN_DIR/logs/admin.log" 2>&1 \
            || { tail -n 5 "$RUN_DIR/logs/admin.log" >&2; die "chaincode commit failed"; }
    fi
    for org in "${ORGS[@]}"; do
        wait_for "$CC_NAME to answer on peer0.$org" chaincode chaincode_answers "$org"
    done
    log "chaincode deployed in $(elapsed "$t0") s"
}

wait_all() {
    local what="$1" pid failed=0; shift
    for pid in "$@"; do wait "$pid" || failed=1; done
    ((failed == 0)) || { tail -n 8 "$RUN_DIR/logs/admin.log" >&2; die "$what failed on at least one peer"; }
}

# A deterministic package (fixed mtimes, gzip -n): the same files give the same package ID.
package_chaincode() {
    local dir="$RUN_DIR/chaincode"
    rm -rf "$dir/src" && mkdir -p "$dir/src"
    cat >"$dir/src/connection.json" <<EOF
{"address": "$CC_ADDRESS", "dial_timeout": "10s", "tls_required": false}
EOF
    cat >"$dir/src/metadata.json" <<EOF
{"type": "ccaas", "label": "$CC_LABEL"}
EOF
    (cd "$dir/src" && tar --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - connection.json | gzip -n >code.tar.gz)
    (cd "$dir/src" && tar --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - metadata.json code.tar.gz | gzip -n >"$dir/$CC_NAME.tgz")
    echo "$dir/$CC_NAME.tgz"
}

start_chaincode_server() {
    local pid_file="$RUN_DIR/pids/chaincode.pid"
    if alive "$pid_file"; then stop_pid "$pid_file" chaincode; fi
    "$PYTHON" -c "import blockfedml_chaincode" 2>/dev/null \
        || die "$PYTHON cannot import blockfedml_chaincode; install the project (make test creates .venv) or set BLOCKFEDML_PYTHON"
    log "starting the chaincode server on $CC_ADDRESS"
    start chaincode env CHAINCODE_ID="$1" CHAINCODE_SERVER_ADDRESS="$CC_ADDRESS" "$PYTHON" -m blockfedml_chaincode
    wait_for "the chaincode server on $CC_ADDRESS" chaincode port_in_use "${CC_ADDRESS##*:}"
}

chaincode_answers() {
    (as_admin "$1"; "$FABRIC_BIN/peer" chaincode query -C "$CHANNEL" -n "$CC_NAME" -c '{"Args":["ListOrgs"]}')
}

# ---- down ---------------------------------------------------------------------
# stop_pid FILE NAME: stop the recorded process if it is still the one we started.
stop_pid() {
    local file="$1" name="$2" pid cmdline
    pid="$(cat "$file" 2>/dev/null)" || return 0
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        case "$cmdline" in
            *orderer*|*"peer node start"*|*blockfedml_chaincode*)
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
                log "stopped $name (pid $pid)" ;;
            *) log "pid $pid of $name now belongs to another program; left alone" ;;
        esac
    fi
    rm -f "$file"
}

cmd_down() {
    local f
    for f in "$RUN_DIR"/pids/*.pid; do
        [[ -e "$f" ]] && stop_pid "$f" "$(basename "$f" .pid)"
    done
    if [[ "${1:-}" == "--keep" ]]; then
        log "processes stopped; state kept in $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
        log "network down; $RUN_DIR removed"
    fi
}

# cmd_stop NODE / cmd_start NODE: one node of a running network, its state kept.
cmd_stop() {
    local node="$1"
    [[ -e "$RUN_DIR/pids/$node.pid" ]] || die "no recorded process '$node' in $RUN_DIR (see 'scripts/network.sh status')"
    stop_pid "$RUN_DIR/pids/$node.pid" "$node"
}

cmd_start() {
    local node="$1" n org
    [[ -d "$RUN_DIR/crypto" ]] || die "no network in $RUN_DIR; run 'scripts/network.sh up' first"
    [[ -e "$RUN_DIR/pids/$node.pid" ]] && alive "$RUN_DIR/pids/$node.pid" && die "$node is already running"
    case "$node" in
        orderer|orderer2|orderer3)
            n="${node#orderer}"; n="${n:-1}"
            start_orderer "$n"
            wait_for "$node to follow the raft leader" "$node" \
                metric "$(orderer_ops_port "$n")" "^consensus_etcdraft_leader_changes\\{channel=\"$CHANNEL\"\\} [1-9]" ;;
        peer0.Org1|peer0.Org2|peer0.Org3)
            org="${node#peer0.}"
            start_peer "$org"
            wait_for "$node's operations endpoint" "$node" metric "$(peer_ops_port "$org")" "^go_goroutines" ;;
        *) die "unknown node '$node' (orderer, orderer2, orderer3, peer0.Org1, peer0.Org2, peer0.Org3)" ;;
    esac
    log "$node started again from its state in $RUN_DIR"
}

cmd_status() {
    local f state
    [[ -d "$RUN_DIR/pids" ]] || { echo "no network in $RUN_DIR"; return 0; }
    for f in "$RUN_DIR"/pids/*.pid; do
        [[ -e "$f" ]] || continue
        if alive "$f"; then state=running; else state=stopped; fi
        printf '%-12s %-8s pid %s\n' "$(basename "$f" .pid)" "$state" "$(cat "$f")"
    done
}

# ---- main ---------------------------------------------------------------------
case "${1:-}" in
    up) cmd_up ;;
    deploy) cmd_deploy ;;
    down) shift; cmd_down "${1:-}" ;;
    status) cmd_status ;;
    stop) [[ -n "${2:-}" ]] || die "usage: $0 stop NODE"; cmd_stop "$2" ;;
    start) check_fabric_bin; [[ -n "${2:-}" ]] || die "usage: $0 start NODE"; cmd_start "$2" ;;
    channel-join) check_fabric_bin; [[ -n "${2:-}" ]] || die "usage: $0 channel-join ORG"; channel_join "$2" ;;
    channel-list) check_fabric_bin; [[ -n "${2:-}" ]] || die "usage: $0 channel-list ORG"
                  (as_admin "$2"; "$FABRIC_BIN/peer" channel list 2>/dev/null) ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
