# Sourced by bench/checkin.sh and bench/cluster.sh: nginx as the anchor, answering
# every request with a fixed body.
#
# start_nginx DIR PORT WORKERS BODY_FILE: nginx on 127.0.0.1:PORT with WORKERS
# worker processes, its config, pid, logs and temp files under DIR, answering
# 200 with the bytes of BODY_FILE (JSON) to any request, access log off,
# keep-alive unbounded. Waits until it answers; sets NGINX_PID (the master).
start_nginx() {
  local dir=$1 port=$2 workers=$3 body_file=$4 escaped
  mkdir -p "$dir/tmp"
  escaped=$(sed 's/\\/\\\\/g; s/"/\\"/g' "$body_file")
  cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
      return 200 "$escaped";
    }
  }
}
CONF
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  local _
  for _ in $(seq 50); do
    curl -s -o "$dir/answer.json" -X POST "http://127.0.0.1:$port/v1/checkin" 2> /dev/null && break
    kill -0 "$NGINX_PID" 2> /dev/null || { cat "$dir/error.log" >&2; return 1; }
    sleep 0.1
  done
  cmp -s "$dir/answer.json" "$body_file" || { echo "nginx: the body differs from $body_file" >&2; return 1; }
}
