# Configuration: what nginx -t accepts and what it rejects (with file:line), as nginx-rtmp-module.
use lib 't/lib';
use Test::Nginx::Rtmp;

run_tests();

__DATA__

=== TEST 1: minimal server
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s, 'connects');



=== TEST 2: two servers on two ports, listen with an address
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_RTMP_PORT2;
    application other { live on; }
}
--- run
for my $port ($TEST_NGINX_RTMP_PORT, $TEST_NGINX_RTMP_PORT2) {
    my $s = rtmp_connect_raw($port);
    ok($s, "port $port connects");
    ok($s && rtmp_handshake($s), "port $port handshakes");
}



=== TEST 3: application directives of nginx-rtmp-module
--- config
live on;
chunk_size 4096;
ping 30s;
timeout 10s;
server {
    listen $TEST_NGINX_RTMP_PORT;
    chunk_size 4096;
    ping 30s;
    ping_timeout 10s;
    timeout 10s;
    max_message 1M;
    ack_window 5000000;
    max_streams 32;
    application live {
        live on;
        wait_key on;
        wait_video off;
        idle_streams off;
        publish_notify off;
        play_restart off;
        meta copy;
    }
    application other {
        live on;
        meta off;
    }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s && rtmp_handshake($s), 'handshakes');



=== TEST 4: several workers
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
for (1 .. 4) {
    my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
    ok($s && rtmp_handshake($s), "connection $_ handshakes");
}



=== TEST 5: rtmp next to http
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location / { return 200 "ok\n"; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s && rtmp_handshake($s), 'rtmp handshakes');
my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$TEST_NGINX_HTTP_PORT", Timeout => 5);
ok($h, 'http connects');
print $h "GET / HTTP/1.0\r\nHost: x\r\n\r\n" if $h;
my $resp = $h ? read_bytes($h, 17, 5) // '' : '';
like($resp, qr{^HTTP/1\.1 200}, 'http answers');



=== TEST 6: unknown directive
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    foo bar;
}
--- must_die: unknown directive "foo".*nginx\.conf:\d+
--- must_die_line: 3



=== TEST 7: unknown directive in an application
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        foo bar;
    }
}
--- must_die: unknown directive "foo"
--- must_die_line: 5



=== TEST 8: listen directly in rtmp{}
--- config
listen $TEST_NGINX_RTMP_PORT2;
server {
    listen $TEST_NGINX_RTMP_PORT;
}
--- must_die: "listen" directive is not allowed here
--- must_die_line: 1



=== TEST 9: listen in an application
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        listen $TEST_NGINX_RTMP_PORT2;
    }
}
--- must_die: "listen" directive is not allowed here
--- must_die_line: 4



=== TEST 10: application outside server
--- config
application live {
    live on;
}
server {
    listen $TEST_NGINX_RTMP_PORT;
}
--- must_die: "application" directive is not allowed here
--- must_die_line: 1



=== TEST 11: chunk_size not a number
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    chunk_size abc;
}
--- must_die: invalid
--- must_die_line: 3



=== TEST 12: live with a value that is not on/off
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live maybe;
    }
}
--- must_die: invalid value "maybe"
--- must_die_line: 4



=== TEST 13: timeout that is not a time
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    timeout forever;
}
--- must_die: invalid
--- must_die_line: 3



=== TEST 14: wrong number of arguments
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    chunk_size 4096 8192;
}
--- must_die: invalid number of arguments in "chunk_size" directive
--- must_die_line: 3



=== TEST 15: same port in two servers
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
}
server {
    listen $TEST_NGINX_RTMP_PORT;
}
--- must_die: duplicate



=== TEST 16: rtmp{} twice
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
}
}
rtmp {
server {
    listen $TEST_NGINX_RTMP_PORT2;
}
--- must_die: "rtmp" directive is duplicate



=== TEST 17: rtmp{} without load_module
--- no_load_module
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
}
--- must_die: unknown directive "rtmp"



=== TEST 18: bad listen address
--- config
server {
    listen 127.0.0.1:notaport;
}
--- must_die: invalid|host not found|port
--- must_die_line: 2



=== TEST 19: accepted but not implemented directives warn at start-up
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    out_cork 8;
    buflen 1s;
    application live {
        live on;
    }
}
--- error_log
/out_cork.*is not implemented|is not implemented.*out_cork/
/buflen.*is not implemented|is not implemented.*buflen/
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s && rtmp_handshake($s), 'still serves');
