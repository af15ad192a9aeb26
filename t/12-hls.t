# HLS: the module writes MPEG-TS segments and playlists into hls_path while FFmpeg (or our client)
# publishes; nginx's own HTTP side serves them; ffprobe/ffmpeg read them back. Browser playback is
# t/13-hls-browser.t.
use lib 't/lib';
use Test::Nginx::Rtmp;

# Playlist text and its parts: { text, target, seq, segs => [{dur, uri, discont, key, date}], ... }.
sub playlist {
    my ($file) = @_;
    my $t = Test::Nginx::Rtmp::slurp($file);
    my %p = (text => $t, segs => []);
    $p{target} = $1 if $t =~ /^#EXT-X-TARGETDURATION:(\d+)$/m;
    $p{seq} = $1 if $t =~ /^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m;
    my %next;
    for (split /\n/, $t) {
        if (/^#EXTINF:([\d.]+),/) { $next{dur} = $1 }
        elsif (/^#EXT-X-DISCONTINUITY$/) { $next{discont} = 1 }
        elsif (/^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"/) { $p{key} = $1 }
        elsif (/^#EXT-X-PROGRAM-DATE-TIME:(.+)$/) { $next{date} = $1 }
        elsif (/^[^#\s]/) { push @{ $p{segs} }, { %next, uri => $_, key => $p{key} }; %next = () }
    }
    return \%p;
}

# Waits until the playlist lists $n segments; returns it.
sub wait_segments {
    my ($file, $n, $secs) = @_;
    my $p;
    wait_until(sub { -s $file && ($p = playlist($file)) && @{ $p->{segs} } >= $n }, $secs // 30, 0.2);
    return $p;
}

# ffprobe's view of a file or URL: { codecs => 'h264,aac', first_key => 1/0, packets, err }.
sub probe_ts {
    my ($src) = @_;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries',
        'stream=codec_name:packet=stream_index,flags,pts_time,dts_time', '-of', 'csv=p=0', $src], timeout => 20);
    my (@codecs, $first_video);
    my $packets = 0;
    for (split /\n/, $out) {
        my @f = split /,/;
        # Streams are listed per program and again at the top level: keep each index once.
        if (@f == 1) { push @codecs, $f[0]; next }
        $packets++;
    }
    @codecs = @codecs[0 .. $#codecs / 2] if @codecs % 2 == 0 && "@codecs[0 .. $#codecs / 2]" eq "@codecs[@codecs / 2 .. $#codecs]";
    # The video stream's first packet (stream order as ffprobe lists it).
    my ($vi) = grep { $codecs[$_] =~ /^(h264|hevc)$/ } 0 .. $#codecs;
    if (defined $vi) {
        ($first_video) = grep { /^$vi,/ } split /\n/, $out;
    }
    return { codecs => join(',', @codecs), first_key => ($first_video // '') =~ /,K/ ? 1 : 0,
             packets => $packets, err => $err, code => $code };
}

# The first two TS packets' PIDs.
sub first_pids {
    my $d = Test::Nginx::Rtmp::slurp($_[0]);
    return map { length($d) >= $_ * 188 + 3 && substr($d, $_ * 188, 1) eq "\x47"
                 ? unpack('n', substr($d, $_ * 188 + 1, 2)) & 0x1fff : -1 } 0, 1;
}

# Decodes $secs of a URL with ffmpeg: (video frames, stderr).
sub decode {
    my ($src, $secs) = @_;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffmpeg', '-hide_banner', '-nostdin', '-v', 'error', '-i', $src,
        '-t', $secs, '-f', 'framemd5', '-'], timeout => $secs + 40);
    my $v = () = $out =~ /^0,/mg;
    return ($v, $err);
}

sub ts_files { my ($dir, $re) = @_; opendir(my $d, $dir) or return (); my @f = sort grep { /$re/ } readdir $d; return @f }

run_tests();

__DATA__

=== TEST 1: live HLS: playlist rules, keyframe-first segments with PAT/PMT, ffmpeg decodes over HTTP
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_playlist_length 10s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ {
        alias $TEST_NGINX_PREFIX/hls/;
        types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 90);
my $p = wait_segments("$dir/test.m3u8", 5, 40);
ok($p && @{ $p->{segs} } >= 5, 'five segments listed') or return diag(publisher_log($pub));
my $t = $p->{text};
like($t, qr/\A#EXTM3U\n#EXT-X-VERSION:3\n/, 'header and version');
like($t, qr/^#EXT-X-INDEPENDENT-SEGMENTS$/m, 'independent segments');
unlike($t, qr/PLAYLIST-TYPE|ENDLIST/, 'a live playlist has no type and no end');
is(scalar(grep { $_->{date} && $_->{date} =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ } @{ $p->{segs} }),
   scalar @{ $p->{segs} }, 'PROGRAM-DATE-TIME on every segment');
ok(!grep({ int($_->{dur} + 0.5) > $p->{target} } @{ $p->{segs} }), "every EXTINF rounds to <= TARGETDURATION $p->{target}");
my @inner = @{ $p->{segs} }[1 .. $#{ $p->{segs} } - 1];
ok(!grep({ $_->{dur} < 1.9 || $_->{dur} > 2.1 } @inner), 'segments last one 2 s GOP')
    or diag(join ' ', map { $_->{dur} } @{ $p->{segs} });
my $total = 0; $total += $_->{dur} for @{ $p->{segs} };
cmp_ok($total, '>=', 10, 'the window holds hls_playlist_length');
for my $s (@{ $p->{segs} }[0 .. 2]) {
    my $f = "$dir/$s->{uri}";
    ok(-s $f, "$s->{uri} exists");
    is(join(',', first_pids($f)), '0,4096', "$s->{uri} starts with PAT and PMT");
    my $pr = probe_ts($f);
    is($pr->{codecs}, 'h264,aac', "$s->{uri}: H.264 and AAC");
    ok($pr->{first_key}, "$s->{uri}: first video packet is a keyframe");
    is($pr->{err}, '', "$s->{uri}: ffprobe reports no error");
}
cmp_ok(scalar(my @tmp = ts_files($dir, qr/\.tmp$/)), '<=', 1, 'at most the open segment is a temporary file');
ok(!grep({ $_->{uri} =~ /tmp/ } @{ $p->{segs} }), 'no temporary file is listed');
my ($frames, $err) = decode("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/test.m3u8", 6);
cmp_ok($frames, '>=', 140, 'ffmpeg decodes 6 s of the live playlist over HTTP');
is($err, '', 'without a decoding error');
# Sequence numbers and files: the same sequence keeps naming the same URI. The window slides
# with the next segment (2 s): wait for it.
my $p2;
wait_until(sub { $p2 = playlist("$dir/test.m3u8"); ($p2->{seq} // -1) > $p->{seq} }, 15, 0.2);
my %by_seq1 = map { ($p->{seq} + $_ => $p->{segs}[$_]{uri}) } 0 .. $#{ $p->{segs} };
my %by_seq2 = map { ($p2->{seq} + $_ => $p2->{segs}[$_]{uri}) } 0 .. $#{ $p2->{segs} };
ok(!grep({ exists $by_seq2{$_} && $by_seq2{$_} ne $by_seq1{$_} } keys %by_seq1), 'a media sequence number always names the same URI');
cmp_ok($p2->{seq}, '>', $p->{seq}, 'the window slid');
stop($pub);
--- no_error_log
[error]



=== TEST 2: irregular GOPs: cuts only at keyframes, TARGETDURATION covers every EXTINF and never shrinks
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_playlist_length 60s;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/irr", file => media('irregular.flv'), timeout => 40);
my (@targets, $p);
my $done = wait_until(sub {
    if (-s "$dir/irr.m3u8") { $p = playlist("$dir/irr.m3u8"); push @targets, $p->{target} }
    return defined wait_publisher($pub, 0) ? 1 : 0;
}, 30, 0.1);
ok($done, 'the publisher finished');
$p = wait_segments("$dir/irr.m3u8", 4, 5);
my @d = map { $_->{dur} } @{ $p->{segs} };
note("EXTINF: @d; TARGETDURATION seen: @targets[0, -1]");
my @want = (1.2, 3.4, 5.2, 2.2);
is(scalar @d, 4, 'four segments: cut at the first keyframe 1 s or more into a segment');
for my $i (0 .. 2) {
    ok(abs(($d[$i] // 0) - $want[$i]) < 0.05, "segment $i lasts $want[$i] s") or diag("got $d[$i]");
}
ok(!grep({ int($_ + 0.5) > $p->{target} } @d), "TARGETDURATION $p->{target} covers every EXTINF");
my $shrunk = grep { $targets[$_] < $targets[$_ - 1] } 1 .. $#targets;
is($shrunk, 0, 'TARGETDURATION never shrank over ' . scalar(@targets) . ' reads');
for my $s (@{ $p->{segs} }) {
    ok(probe_ts("$dir/$s->{uri}")->{first_key}, "$s->{uri} starts with a keyframe");
}



=== TEST 3: the publisher leaves and returns, across a reload: the sequence goes on after a discontinuity
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_playlist_length 30s;
    }
}
--- reloads
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/re";
my $pub = publish($url, loop => 1, timeout => 60);
my $p1 = wait_segments("$dir/re.m3u8", 3, 30);
stop($pub);
# The writer finishes when the session closes: its last segment and the playlist are renamed
# into place (no temporary file left).
ok(wait_unpublished('re') && wait_until(sub { !ts_files($dir, qr/\.tmp$/) }, 10, 0.1),
   'the first publish is finished') or diag(join ' ', ts_files($dir, qr/./));
$p1 = playlist("$dir/re.m3u8");
my $n1 = @{ $p1->{segs} };
my $master = `cat $TEST_NGINX_PREFIX/logs/nginx.pid` + 0;
my @old = Test::Nginx::Rtmp::worker_pids($master);
ok(kill('HUP', $master), 'nginx reloads');
# The next publish goes to the new worker: wait until the old one (no clients left) is gone.
ok(wait_until(sub { my @w = Test::Nginx::Rtmp::worker_pids($master); @w == 1 && !grep({ kill 0, $_ } @old) }, 20),
   'the new worker took over');
$pub = publish($url, loop => 1, timeout => 60);
my $p2 = wait_segments("$dir/re.m3u8", $n1 + 2, 30);
ok($p2, 'the second publish adds segments');
is($p2->{seq}, $p1->{seq}, 'the media sequence continues');
is($p2->{segs}[$_]{uri}, $p1->{segs}[$_]{uri}, "segment $_ of the first publish is still listed") for 0 .. $n1 - 1;
ok($p2->{segs}[$n1]{discont}, 'EXT-X-DISCONTINUITY before the first new segment');
is(scalar(grep { $_->{discont} } @{ $p2->{segs} }), 1, 'and nowhere else');
my ($id1) = $p2->{segs}[$n1 - 1]{uri} =~ /(\d+)\.ts$/;
my ($id2) = $p2->{segs}[$n1]{uri} =~ /(\d+)\.ts$/;
is($id2, $id1 + 1, 'file numbering continues');
ok(-s "$dir/$p2->{segs}[0]{uri}", 'the old segments were not cleaned up');
stop($pub);



=== TEST 4: nested layout and variants: a master playlist with BANDWIDTH, RESOLUTION and CODECS
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_nested on;
        hls_fragment 2s;
        hls_variant _hi BANDWIDTH=2400000;
        hls_variant _lo BANDWIDTH=200000 PROGRAM-ID=1;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ {
        alias $TEST_NGINX_PREFIX/hls/;
        types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $hi = publish("$base/show_hi", file => media('bench.flv'), loop => 1, timeout => 60);
my $lo = publish("$base/show_lo", loop => 1, timeout => 60);
my $p = wait_segments("$dir/show_hi/index.m3u8", 2, 30);
ok($p, 'nested playlist show_hi/index.m3u8');
like($p->{segs}[0]{uri}, qr/^\d+\.ts$/, 'segment URIs are relative to the stream directory');
ok(-s "$dir/show_hi/$p->{segs}[0]{uri}", 'segment in the stream directory');
wait_segments("$dir/show_lo/index.m3u8", 2, 30);
my $m;
wait_until(sub { $m = Test::Nginx::Rtmp::slurp("$dir/show.m3u8"); ($m =~ tr/\n//) >= 7 }, 10, 0.2);
note($m);
like($m, qr/^#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",FRAME-RATE=30\.000\nshow_hi\/index\.m3u8$/m,
     'the _hi variant with its resolution and codecs');
like($m, qr/^#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=640x360,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",FRAME-RATE=25\.000\nshow_lo\/index\.m3u8$/m,
     'the _lo variant');
unlike($m, qr/PROGRAM-ID/, 'no PROGRAM-ID (removed from HLS)');
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries', 'stream=width',
    '-of', 'csv=p=0', "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/show.m3u8"], timeout => 30);
my %w = map { $_ => 1 } grep { /^\d+$/ } split /\n/, $out;
ok($w{1280} && $w{640}, 'ffprobe reads both variants through the master playlist over HTTP') or diag("$out $err");
stop($_) for $hi, $lo;



=== TEST 5: AES-128: segments are encrypted, keys rotate, ffmpeg decrypts with the key URL
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_keys on;
        hls_fragments_per_key 2;
        hls_key_path $TEST_NGINX_PREFIX/keys;
        hls_key_url http://127.0.0.1:$TEST_NGINX_HTTP_PORT/keys/;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ { alias $TEST_NGINX_PREFIX/hls/; }
    location /keys/ { alias $TEST_NGINX_PREFIX/keys/; }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/sec", loop => 1, timeout => 60);
my $p = wait_segments("$dir/sec.m3u8", 5, 30);
ok($p, 'five segments');
my @keys = $p->{text} =~ /^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"$/mg;
cmp_ok(scalar @keys, '>=', 2, 'keys rotate every 2 segments');
like($keys[0], qr{^http://127\.0\.0\.1:\d+/keys/sec-\d+\.key$}, 'key URI under hls_key_url');
my ($kf) = $keys[0] =~ m{/keys/(.+)$};
is(-s "$TEST_NGINX_PREFIX/keys/$kf", 16, 'the key file holds 16 bytes');
my $seg = Test::Nginx::Rtmp::slurp("$dir/$p->{segs}[0]{uri}");
is(length($seg) % 16, 0, 'segment length is whole AES blocks');
ok(!(substr($seg, 0, 1) eq "\x47" && substr($seg, 188, 1) eq "\x47"), 'segment on disk is not plain MPEG-TS');
my ($frames, $err) = decode("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/sec.m3u8", 4);
cmp_ok($frames, '>=', 90, 'ffmpeg decrypts and decodes the playlist');
is($err, '', 'without an error');
stop($pub);



=== TEST 6: HEVC in MPEG-TS (stream type 0x24) from an Enhanced RTMP publisher
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc", hevc_flv('enhanced'), loop => 1,
                       args => ['--fourcc', 'hvc1'], timeout => 40);
my $p = wait_segments("$dir/hevc.m3u8", 3, 30);
ok($p, 'HEVC segments');
my $pr = probe_ts("$dir/$p->{segs}[1]{uri}");
is($pr->{codecs}, 'hevc', 'ffprobe: HEVC');
ok($pr->{first_key}, 'segment starts with a keyframe');
my ($frames, $err) = decode("$dir/hevc.m3u8", 2);
cmp_ok($frames, '>=', 45, 'ffmpeg decodes the HEVC playlist');
is($err, '', 'without an error');
stop($pub);



=== TEST 7: audio-only and video-only streams
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my @ff = ('ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', media());
my $a = Test::Nginx::Rtmp::spawn_publisher('audio only', 40, @ff, '-vn', '-c', 'copy', '-f', 'flv', "$base/aud");
my $v = Test::Nginx::Rtmp::spawn_publisher('video only', 40, @ff, '-an', '-c', 'copy', '-f', 'flv', "$base/vid");
my $pa = wait_segments("$dir/aud.m3u8", 3, 30);
my $pv = wait_segments("$dir/vid.m3u8", 3, 30);
ok($pa && $pv, 'both write segments');
is(probe_ts("$dir/$pa->{segs}[1]{uri}")->{codecs}, 'aac', 'audio-only segment holds AAC only');
ok(abs($pa->{segs}[1]{dur} - 1) < 0.1, 'audio-only segments are cut at hls_fragment') or diag($pa->{text});
my $pr = probe_ts("$dir/$pv->{segs}[1]{uri}");
is($pr->{codecs}, 'h264', 'video-only segment holds H.264 only');
ok($pr->{first_key}, 'and starts with a keyframe');
my ($fa, $ea) = decode("$dir/aud.m3u8", 2);
is($ea, '', 'audio-only playlist decodes without an error');
stop($_) for $a, $v;



=== TEST 8: cleanup: a segment is deleted only after it left the playlist and a grace period
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_playlist_length 3s;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cl", loop => 1, timeout => 60);
my $p = wait_segments("$dir/cl.m3u8", 1, 30);
my $gone;
my $min_seen = 1e9;
# For 16 s: every segment any playlist listed stays on disk for its duration plus the playlist's.
my (%listed_at, $early);
my $t0 = Time::HiRes::time();
while (Time::HiRes::time() - $t0 < 16) {
    my $q = playlist("$dir/cl.m3u8");
    my $now = Time::HiRes::time();
    $listed_at{$_->{uri}} = $now for @{ $q->{segs} };
    for my $uri (keys %listed_at) {
        # Grace: its duration (2 s GOP) + the playlist (>= 3 target durations of 2 s).
        $early++ if !-e "$dir/$uri" && $now - $listed_at{$uri} < 7;
    }
    Time::HiRes::sleep(0.1);
}
is($early // 0, 0, 'no segment vanished within its grace period after it was last listed');
my @files = ts_files($dir, qr/^cl-\d+\.ts$/);
my $q = playlist("$dir/cl.m3u8");
cmp_ok(scalar @files, '<=', @{ $q->{segs} } + 6, 'old segments are deleted (' . scalar(@files) . ' on disk)');
ok(!-e "$dir/cl-0.ts", 'the first segment is gone');
stop($pub);
ok(wait_until(sub { !-e "$dir/cl.m3u8" && !ts_files($dir, qr/^cl-/) }, 20, 0.2),
   'after the publisher left, the playlist and segments are removed after the grace period');



=== TEST 9: stream names that cannot be file names are refused at publish; nothing is written
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
for my $name ('.hidden', 'x' x 300, '../etc') {
    my $out = `timeout 20 @{[rtmp_cli()]} publish '$base/$name' --file @{[media()]} 2>&1`;
    isnt($? >> 8, 0, 'publish ' . substr($name, 0, 12) . ' fails');
    like($out, qr/BadName/, 'with BadName');
}
my @all = ts_files($dir, qr/^[^.]|^\.[^.]/);
is(scalar @all, 0, 'nothing was written in hls_path') or diag("@all");
--- error_log
hls: publish refused: stream name starts with a dot
hls: publish refused: stream name longer than 200 bytes



=== TEST 10: hls_type event keeps every segment and ends with EXT-X-ENDLIST
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_playlist_length 4s;
        hls_type event;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/ev", timeout => 30);
ok(defined wait_publisher($pub, 25), 'the 10 s publish ended');
my $p;
ok(wait_until(sub { $p = playlist("$dir/ev.m3u8"); $p->{text} =~ /#EXT-X-ENDLIST\n\z/ }, 5, 0.2), 'EXT-X-ENDLIST');
like($p->{text}, qr/^#EXT-X-PLAYLIST-TYPE:EVENT$/m, 'PLAYLIST-TYPE:EVENT');
is($p->{seq}, 0, 'nothing left the playlist');
is(scalar @{ $p->{segs} }, 5, 'all five 2 s segments');
my $total = 0; $total += $_->{dur} for @{ $p->{segs} };
ok(abs($total - 10) < 0.2, "they add up to the 10 s published ($total)");
ok(!grep({ !-s "$dir/$_->{uri}" } @{ $p->{segs} }), 'every segment is kept');



=== TEST 11: naming by timestamp under hls_base_url
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_fragment_naming timestamp;
        hls_base_url http://cdn.example/live/;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/ts", loop => 1, timeout => 40);
my $p = wait_segments("$dir/ts.m3u8", 3, 30);
my @ids = map { $_->{uri} =~ m{^http://cdn\.example/live/ts-(\d+)\.ts$} ? $1 : -1 } @{ $p->{segs} };
ok(!grep({ $_ < 0 } @ids), 'URIs under hls_base_url') or diag($p->{text});
ok(abs($ids[1] - $ids[0] - 2000) < 100, 'ids are stream timestamps in ms') or diag("@ids");
ok(-s "$dir/ts-$ids[0].ts", 'files carry the same ids');
stop($pub);



=== TEST 12: hls on without hls_path fails nginx -t
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
    }
}
--- must_die: "hls" is on in application "live" but "hls_path" is not set



=== TEST 13: a bad hls value fails nginx -t with file:line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        hls_path /tmp;
        hls_fragment_naming random;
    }
}
--- must_die: invalid value "random" in "hls_fragment_naming" directive
--- must_die_line: 5
