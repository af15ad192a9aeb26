# Static relays (`push`, `pull`, their URL options, reconnects) between several nginx instances:
# the block's nginx and others started by aux_nginx (an origin, a target that dies and comes
# back). FFmpeg publishes; FFmpeg and our client's bench play.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::RtmpOrigin qw(rtmp_origin origin_connections);
use JSON::PP ();

sub count_lines { scalar log_lines(shift) }

sub bench {
    my ($url, $players, $secs) = @_;
    my $json = `timeout @{[$secs + 30]} @{[rtmp_cli()]} bench '$url' --players $players --duration $secs --json 2>/dev/null`;
    return eval { JSON::PP::decode_json($json) } // { raw => $json };
}

sub aux_count { my ($aux, $re) = @_; scalar grep { $_ =~ $re } split /\n/, aux_log($aux) }

# A test CA and a server certificate for "localhost" signed by it, made once under target/t/tls
# (the TLS RTMP listener of TEST 5 is an nginx stream{} proxy with that certificate).
sub make_tls {
    my $dir = repo_root() . '/target/t/tls';
    return if -s "$dir/server.pem" && -s "$dir/ca.pem";
    system('mkdir', '-p', $dir);
    my $q = "2>/dev/null";
    system("cd $dir && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj /CN=ngx-rtmp-rs-test-ca $q") == 0
        && system("cd $dir && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost $q") == 0
        && system("cd $dir && printf 'subjectAltName=DNS:localhost\n' > ext.cnf && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3650 -extfile ext.cnf $q") == 0
        or die "openssl failed";
}
make_tls();

# A tiny DNS server on 127.0.0.1:$port (UDP) in a child: A records from %$names, no AAAA,
# NXDOMAIN for other names; it appends each question to $log. Returns its pid.
sub dns_server {
    my ($port, $names, $log) = @_;
    require IO::Socket::INET;
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'udp') or die "dns: $!";
    my $pid = fork() // die "fork: $!";
    return $pid if $pid;
    while (1) {
        my $q = '';
        my $peer = $sock->recv($q, 512) // next;
        next if length($q) < 17;
        my ($id) = unpack('n', $q);
        my ($pos, @labels) = (12);
        while ($pos < length $q) {
            my $len = ord substr($q, $pos, 1);
            $pos++;
            last if $len == 0;
            push @labels, substr($q, $pos, $len);
            $pos += $len;
        }
        my ($qtype) = unpack('n', substr($q, $pos, 2));
        my $question = substr($q, 12, $pos + 4 - 12);
        my $name = lc join '.', @labels;
        if (open my $fh, '>>', $log) { print $fh "$name $qtype\n"; close $fh }
        my $ip = $names->{$name};
        my ($flags, @answers) = (0x8180);
        if (!defined $ip) {
            $flags = 0x8183;
        } elsif ($qtype == 1) {
            push @answers, pack('n n n N n', 0xc00c, 1, 1, 1, 4) . pack('C4', split /\./, $ip);
        }
        $sock->send(pack('n n n n n n', $id, $flags, 1, scalar(@answers), 0, 0) . $question . join('', @answers));
    }
}

# A raw player of $app/$name on our nginx (it starts a pull): its socket once play is sent.
sub raw_player {
    my ($app, $name) = @_;
    my $s = rtmp_raw_connect($ENV{TEST_NGINX_RTMP_PORT}, $app) or die "connect: $@";
    my $id = rtmp_create_stream($s) // die 'no createStream result';
    send_bytes($s, rtmp_chunk(8, 20, $id, amf_cmd('play', 3, amf_null(), amf_str($name)))) or die 'send failed';
    return $s;
}

# What the Perl origin got from each relay, by the name the relay played:
# { name => { connect => props, play => record, buflen => SetBufferLength record, msgs => [all] } }.
sub origin_pulls {
    my $origin = shift;
    my %by;
    for my $msgs (values %{ origin_connections($origin) }) {
        my ($play) = grep { ($_->{cmd} // '') eq 'play' } @$msgs;
        next unless $play;
        my ($connect) = grep { ($_->{cmd} // '') eq 'connect' } @$msgs;
        my ($buflen) = grep { ($_->{type} // 0) == 4 && $_->{event} == 3 } @$msgs;
        $by{ $play->{args}[1] } = { connect => $connect->{args}[0], play => $play, buflen => $buflen, msgs => $msgs };
    }
    return \%by;
}

run_tests();

__DATA__

=== TEST 1: push to two targets at once; name= filters; the URL's play path names the remote stream; a pulled stream's players
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application src {
        live on;
        push rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/dst1;
        push rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/dst2/fixed name=cam flashVer=TEST/1.0 pageUrl=http://page/;
    }
    application dst1 { live on; }
    application dst2 { live on; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/src/cam", loop => 1, timeout => 60);
ok(wait_published('cam', 2), 'the push to dst1 publishes "cam" there') or diag(publisher_log($pub));
ok(wait_published('fixed'), 'the push to dst2 publishes under the URL\'s play path');
my ($v1, $a1, $e1) = count_frames("$base/dst1/cam", 3);
cmp_ok($v1, '>=', 40, 'dst1/cam decodes') or diag($e1);
cmp_ok($a1, '>=', 40, 'with audio');
my ($v2) = count_frames("$base/dst2/fixed", 3);
cmp_ok($v2, '>=', 40, 'dst2/fixed decodes');
ok(count_lines(qr/connect app="dst2" flashver="TEST\/1\.0" tcurl="rtmp:\/\/127\.0\.0\.1:\d+\/dst2"/) >= 1,
    'flashVer= and the default tcUrl reach the target');
my $other = publish("$base/src/other", loop => 1, timeout => 30);
ok(wait_published('other', 2), 'another stream is pushed to dst1 only');
sleep 1;
is(count_lines(qr/relay: push "other" to rtmp:\/\/\S+\/dst2/), 0, 'not to the name=cam target');
stop($other);
stop($pub);
ok(wait_until(sub { count_lines(qr/relay push "cam" to \S+: closing: the published stream ended/) == 2 }, 10),
    'both pushes end with the publisher');
sleep 1;
is(count_lines(qr/relay: push "cam" to \S+: again in/), 0, 'and are not reconnected');
--- no_error_log
[error]



=== TEST 2: push reconnect: a target that dies and comes back gets the stream again; a dead port and an unknown host harm nobody
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application src {
        live on;
        push_reconnect 300ms;
        push rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/app;
        push rtmp://no-such-host.invalid/app;
        push rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/target;
    }
}
--- run
my $aux = aux_nginx("server { listen $TEST_NGINX_HTTP_PORT; application target { live on; } }", port => $TEST_NGINX_HTTP_PORT);
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $target = "rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/target/cam";
my $pub = publish("$base/src/cam", loop => 1, timeout => 90);
ok(wait_published('cam'), 'publishing') or diag(publisher_log($pub));
ok(wait_until(sub { aux_count($aux, qr/live: publish "cam"/) >= 1 }, 10), 'the target gets the push');
my ($v) = count_frames($target, 3);
cmp_ok($v, '>=', 40, 'and it decodes there');
ok(wait_log(qr/relay: push "cam" to rtmp:\/\/127\.0\.0\.1:$TEST_NGINX_RTMP_PORT2\/app: .*again in 300 ms/, 3),
    'a dead port is retried every push_reconnect');
ok(wait_log(qr/relay: push "cam" to rtmp:\/\/no-such-host\.invalid\/app: host "no-such-host\.invalid" was not found.*again in 300 ms/, 2),
    'an unknown host too');
ok(aux_stop($aux), 'the target goes away');
ok(wait_log(qr/relay: push "cam" to rtmp:\/\/127\.0\.0\.1:$TEST_NGINX_HTTP_PORT\/target: again in 300 ms/), 'the push notices');
my ($lv) = count_frames("$base/src/cam", 2);
cmp_ok($lv, '>=', 25, 'the stream still plays locally meanwhile');
ok(aux_start($aux), 'the target comes back');
ok(wait_until(sub { aux_count($aux, qr/live: publish "cam"/) >= 2 }, 10), 'the push reconnects to it');
($v) = count_frames($target, 3);
cmp_ok($v, '>=', 40, 'and it decodes there again');
ok(kill(0, $pub), 'the publisher never noticed');
stop($pub);
--- error_log
"push": host "no-such-host.invalid" not found now
--- no_error_log
[error]



=== TEST 3: pull on demand: 20 players share one upstream connection; the pull stops after the last; a chain of three
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application edge {
        live on;
        pull rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin;
    }
    application edge2 {
        live on;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/edge live=1;
    }
}
--- run
my $aux = aux_nginx("server { listen $TEST_NGINX_HTTP_PORT; application origin { live on; } }", port => $TEST_NGINX_HTTP_PORT);
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin/src", loop => 1, timeout => 90);
ok(wait_until(sub { aux_count($aux, qr/live: publish "src"/) >= 1 }, 10), 'the origin publishes') or diag(publisher_log($pub));
my $r = bench("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/edge/src", 20, 5);
is($r->{players_with_frames}, 20, '20 players of the edge all get frames') or diag(explain($r));
is($r->{players_failed}, 0, 'none fails');
is(aux_count($aux, qr/live: play "src"/), 1, 'through one upstream connection');
ok(wait_log(qr/relay pull "src" from \S+: closing: no player left/), 'the pull ends after the last player');
my ($v, $a, $err) = count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/edge2/src", 4);
cmp_ok($v, '>=', 50, 'a chain origin -> edge -> edge2 decodes') or diag($err);
cmp_ok($a, '>=', 50, 'audio too');
is(aux_count($aux, qr/live: play "src"/), 2, 'the chain pulled from the origin once more');
stop($pub);
--- no_error_log
[error]



=== TEST 4: a pull whose origin restarts keeps its players and reconnects; a static pull runs without players
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application edge {
        live on;
        pull_reconnect 300ms;
        pull rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin;
    }
    application st {
        live on;
        pull rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin/src name=mirror static;
    }
}
--- run
my $aux = aux_nginx("server { listen $TEST_NGINX_HTTP_PORT; application origin { live on; } }", port => $TEST_NGINX_HTTP_PORT);
my $origin = "rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin/src";
my $pub = publish($origin, loop => 1, timeout => 90);
ok(wait_published('mirror', 1, 15), 'the static pull publishes without any player') or diag(publisher_log($pub));
my $out = "$TEST_NGINX_PREFIX/long.flv";
my $player = in_background(sub {
    system("timeout 40 @{[rtmp_cli()]} play rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/edge/src --duration 14 --idle-timeout 12 --out $out >/dev/null 2>&1");
    -s $out;
});
ok(wait_log(qr/relay: pull "src" from \S+: NetStream\.Play\.Start/), 'the edge pulls for its player');
sleep 3;
stop($pub);
aux_stop($aux);
ok(wait_log(qr/relay: pull "src" from \S+: .*again in 300 ms/), 'the pull retries while its player waits');
ok(aux_start($aux), 'the origin restarts');
$pub = publish($origin, loop => 1, timeout => 60);
ok(wait_log(qr/relay: pull "src" from \S+: NetStream\.Play\.Start/, 2, 15), 'the pull reconnected');
ok(wait_published('mirror', 2, 15), 'the static pull too');
result_of($player, 40);
my @tags = flv_tags($out);
my @video = grep { $_->[0] == 9 } @tags;
cmp_ok(scalar(@video), '>=', 150, 'the player got video before and after the restart');
my ($v) = count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/st/mirror", 2);
cmp_ok($v, '>=', 25, 'the static pull plays');
stop($pub);
--- no_error_log
[error]



=== TEST 5: rtmps:// push through a TLS listener (an nginx stream{} proxy): verified chain and host name with SNI; a wrong name is refused and retried; ssl_verify=off
--- config
rtmp_relay_ssl_trusted_certificate $TEST_NGINX_ROOT/target/t/tls/ca.pem;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application src {
        live on;
        push_reconnect 500ms;
        push rtmps://localhost:$TEST_NGINX_HTTP_PORT/target/good;
        push rtmps://127.0.0.1:$TEST_NGINX_HTTP_PORT/target/badname;
        push rtmps://127.0.0.1:$TEST_NGINX_HTTP_PORT/target/noverify ssl_verify=off;
    }
    application target { live on; }
}
--- run
my $tls = "$TEST_NGINX_ROOT/target/t/tls";
my $aux = aux_nginx('', port => $TEST_NGINX_HTTP_PORT, load => ['/usr/lib/nginx/modules/ngx_stream_module.so'],
    main => "stream { log_format sni 'sni=\$ssl_server_name'; server { listen \$AUX_PORT ssl; ssl_certificate $tls/server.pem; ssl_certificate_key $tls/server.key; "
          . "proxy_pass 127.0.0.1:$TEST_NGINX_RTMP_PORT; access_log logs/sni.log sni; } }");
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/src/cam", loop => 1, timeout => 60);
ok(wait_published('cam'), 'publishing') or diag(publisher_log($pub));
ok(wait_published('good'), 'the verified rtmps push publishes through the TLS proxy');
ok(wait_published('noverify'), 'ssl_verify=off publishes too');
my ($v, $a, $err) = count_frames("$base/target/good", 3);
cmp_ok($v, '>=', 40, 'what went through TLS decodes') or diag($err);
ok(wait_log(qr/tls: the server's certificate is not for "127\.0\.0\.1"/, 2), 'a certificate for another name is refused, again and again');
is(count_lines(qr/live: publish "badname"/), 0, 'and nothing is published for it');
stop($pub);
aux_stop($aux);
like(Test::Nginx::Rtmp::slurp("$aux->{prefix}/logs/sni.log"), qr/^sni=localhost$/m, 'SNI named the host');
--- no_error_log
[error]



=== TEST 6: host names through nginx's resolver at each attempt; a name it cannot resolve is retried, never blocking the stream
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application src {
        live on;
        resolver 127.0.0.1:$TEST_NGINX_RTMP_PORT2 valid=1s ipv6=off;
        resolver_timeout 2s;
        push_reconnect 400ms;
        push rtmp://relay.test:$TEST_NGINX_RTMP_PORT/dst;
        push rtmp://nowhere.test:$TEST_NGINX_RTMP_PORT/dst/never;
    }
    application dst { live on; }
}
--- run
my $qlog = "$TEST_NGINX_PREFIX/dns.log";
my $dns = dns_server($TEST_NGINX_RTMP_PORT2, { 'relay.test' => '127.0.0.1' }, $qlog);
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/src/cam", loop => 1, timeout => 60);
ok(wait_published('cam', 2), 'the push to relay.test (resolved at run time) publishes') or diag(publisher_log($pub));
my ($v) = count_frames("$base/dst/cam", 2);
cmp_ok($v, '>=', 25, 'and plays');
ok(wait_log(qr/relay: push "cam" to rtmp:\/\/nowhere\.test:\d+\/dst\/never: host "nowhere\.test": .*again in 400 ms/, 2),
    'nowhere.test fails and is retried');
like(Test::Nginx::Rtmp::slurp($qlog), qr/^relay\.test 1$/m, 'the names went to the configured resolver');
is(count_lines(qr/live: publish "never"/), 0, 'nothing published for the unknown name');
stop($pub);
kill 'KILL', $dns;
waitpid $dns, 0;
--- no_error_log
[error]



=== TEST 7: configuration errors name file:line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application a {
        live on;
        push rtmp://127.0.0.1/x static;
    }
}
--- must_die: "static" is for "pull" only
--- must_die_line: 5



=== TEST 8: a pull as its origin sees it: URL options in connect and play; SetBufferLength of relay_buffer after play
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    relay_buffer 3s;
    application opts {
        live on;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/urlapp/urlname name=a app=remoteapp playPath=remote/path?k=v tcUrl=rtmp://tc.example/x pageUrl=http://page.example/p swfUrl=http://swf.example/p.swf flashVer=TEST/2.0 live=1;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/origin/fixed name=b START=1000 stop=5000;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/urlapp/urlname name=d app=otherapp;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2 name=c;
    }
}
--- run
# createStream answers 7: play and SetBufferLength must name that stream.
my $origin = rtmp_origin(port => $TEST_NGINX_RTMP_PORT2, log => "$TEST_NGINX_PREFIX/origin.jsonl", stream_id => 7);
# A name no pull is for: its play is done (Play.Start of an idle stream) before the others begin.
my $z = raw_player('opts', 'z');
ok(read_until($z, qr/NetStream\.Play\.Start/, 5), 'a player of a name no pull= matches plays (idle)');
my @players = map { raw_player('opts', $_) } qw(a b c d);
my $p;
ok(wait_until(sub { $p = origin_pulls($origin); 4 == grep { $_->{buflen} } values %$p }, 10),
    'four pulls reach the origin, each through play and SetBufferLength') or diag(explain($p));
is_deeply([sort keys %$p], ['c', 'fixed', 'remote/path?k=v', 'urlname'], 'one per name= (none for "z"), playing these names');
is(scalar(keys %{ origin_connections($origin) }), 4, 'and no other connection');
my ($pa, $pb, $pc, $pd) = @$p{'remote/path?k=v', 'fixed', 'c', 'urlname'};
my $up = "127.0.0.1:$TEST_NGINX_RTMP_PORT2";

# a: every string option, and live=1.
is($pa->{connect}{app}, 'remoteapp', 'app= is the connect app');
is($pa->{connect}{tcUrl}, 'rtmp://tc.example/x', 'tcUrl=');
is($pa->{connect}{pageUrl}, 'http://page.example/p', 'pageUrl=');
is($pa->{connect}{swfUrl}, 'http://swf.example/p.swf', 'swfUrl=');
is($pa->{connect}{flashVer}, 'TEST/2.0', 'flashVer=');
is($pa->{play}{args}[1], 'remote/path?k=v', 'playPath= is the played name, query string included');
is_deeply([@{ $pa->{play}{args} }[2, 3]], [-1000, -1000], 'live=1: play start -1000, duration -1000 (live only)');
is($pa->{play}{msid}, 7, 'play on the stream createStream gave');

# b: the URL's app and play path, start=/stop= (option names are case-insensitive).
is($pb->{connect}{app}, 'origin', "b: the URL's app");
is($pb->{connect}{tcUrl}, "rtmp://$up/origin", 'b: default tcUrl = rtmp:// + host:port as written + / + app');
is($pb->{connect}{flashVer}, 'LNX.11,1,102,55', "b: the C module's default flashVer");
is($pb->{connect}{pageUrl}, '', 'b: pageUrl sent empty by default');
is($pb->{connect}{swfUrl}, '', 'b: swfUrl sent empty by default');
is_deeply([@{ $pb->{play}{args} }[2, 3]], [1000, 4000], 'start=1000 stop=5000: play start 1000, duration 4000');

# d: app= replaces the URL's app (also in the default tcUrl), the URL's play path stays.
is($pd->{connect}{app}, 'otherapp', 'd: app= over the URL\'s app');
is($pd->{connect}{tcUrl}, "rtmp://$up/otherapp", 'd: the default tcUrl has the app= app');

# c: a URL without a path: the local app and the local name; play's defaults.
is($pc->{connect}{app}, 'opts', 'c: no app in the URL: the local app');
# (The C module's default tcUrl would end in "/" here: it leaves out an app taken from the local one.)
is($pc->{connect}{tcUrl}, "rtmp://$up/opts", 'c: the default tcUrl names that app');
is_deeply([@{ $pc->{play}{args} }[2, 3]], [-2000, -1000], 'c: play start -2000 (live or recorded), duration -1000');

for my $name (sort keys %$p) {
    my $r = $p->{$name};
    is_deeply([$r->{buflen}{stream_id}, $r->{buflen}{buffer_ms}], [7, 3000],
        "\"$name\": SetBufferLength names the played stream, with relay_buffer 3s = 3000 ms");
    cmp_ok($r->{buflen}{seq}, '>', $r->{play}{seq}, "\"$name\": after play");
    my @first = map {
        $_->{type} == 1 ? "chunk_size $_->{chunk_size}"
            : $_->{type} == 5 ? "window $_->{window}"
            : ($_->{cmd} // "type $_->{type}")
    } @{ $r->{msgs} }[1 .. 3];
    is_deeply(\@first, ['chunk_size 4096', 'window 5000000', 'connect'],
        "\"$name\": Set Chunk Size (the server's chunk_size), Window Acknowledgement Size (its ack_window), then connect, as the C module");
}
ok(wait_log(qr/relay: pull "a" from \S+: NetStream\.Play\.Start/), 'the relay took the origin\'s Play.Start');
close $_ for $z, @players;
--- no_error_log
[error]



=== TEST 9: the defaults as the origin sees them: relay_buffer 5s; a static pull sends SetBufferLength too
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application edge {
        live on;
        pull_reconnect 200ms;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/origin;
    }
    application st {
        live on;
        pull_reconnect 200ms;
        pull rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/origin/src name=mirror static;
    }
}
--- run
my $origin = rtmp_origin(port => $TEST_NGINX_RTMP_PORT2, log => "$TEST_NGINX_PREFIX/origin.jsonl");
my $player = raw_player('edge', 'cam');
my $p;
ok(wait_until(sub { $p = origin_pulls($origin); $p->{cam} && $p->{cam}{buflen} && $p->{src} && $p->{src}{buflen} }, 10),
    'the pull and the static pull play at the origin') or diag(explain($p));
for my $name (qw(cam src)) {
    is_deeply([$p->{$name}{buflen}{stream_id}, $p->{$name}{buflen}{buffer_ms}], [1, 5000],
        "\"$name\": SetBufferLength on stream 1 with the default relay_buffer, 5000 ms");
    is_deeply([@{ $p->{$name}{play}{args} }[2, 3]], [-2000, -1000], "\"$name\": play -2000, -1000");
    is($p->{$name}{connect}{tcUrl}, "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/origin", "\"$name\": default tcUrl");
}
close $player;
--- no_error_log
[error]



=== TEST 10: a reload with a static pull: the new worker 0 pulls; the old one serves its player to the end, then stops its pull and exits (it no longer pulls beside the new one for as long as the origin streams)
--- workers: 2
--- reloads
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application st {
        live on;
        pull rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin/src name=mirror static;
    }
}
--- timeout: 120
--- run
my $aux = aux_nginx("server { listen $TEST_NGINX_HTTP_PORT; application origin { live on; } }", port => $TEST_NGINX_HTTP_PORT);
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_HTTP_PORT/origin/src", loop => 1, timeout => 90);
ok(wait_published('mirror', 1, 15), 'the static pull publishes') or diag(publisher_log($pub));
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/st/mirror";
my $old_player = in_background(sub { my @r = count_frames($url, 8); $r[0] });
ok(wait_log(qr/live: play "mirror"/, 1, 15), 'a player plays');
my $master = master_pid();
my @old = Test::Nginx::Rtmp::worker_pids($master);
ok(kill('HUP', $master), 'reload');
ok(wait_published('mirror', 2, 15), "the new worker 0's static pull publishes");
my ($v) = count_frames($url, 3);
cmp_ok($v // 0, '>=', 40, "a player after the reload gets the stream ($v frames)");
my ($o) = result_of($old_player, 40);
cmp_ok($o // 0, '>=', 120, "the player across the reload got its 8 s ($o frames)");
ok(wait_log(qr/relay: pull "mirror" from \S+: stops, nobody plays it in this exiting worker/, 1, 15),
   'the old static pull stops once its worker has no player of it');
ok(wait_until(sub { !grep { kill(0, $_) } @old }, 20), 'the old workers exit')
    or diag(`ps -o pid,args --ppid $master`);
is(aux_count($aux, qr/live: play "src"/), 2, 'the origin saw two pulls in all (the old and the new worker 0)');
my ($w) = count_frames($url, 3);
cmp_ok($w // 0, '>=', 40, "players go on getting the stream ($w frames)");
stop($pub);
--- no_error_log
[error]
