# HLS with fMP4 segments (hls_fragment_type fmp4), the blocks that do not measure wall-clock time
# (they may run next to another suite): muxed CMAF segments (.m4s, one moof+mdat per track) with an
# init segment (EXT-X-MAP, ftyp+moov with a trak per track and mvex), VERSION 7; a whole published
# file, HEVC, nested variants, AES-128, a republish across a reload, audio-only and video-only
# streams, a configuration error. Boxes are parsed in Perl (t/lib/Test/Nginx/Mp4.pm, playlists in
# t/lib/Test/Nginx/HlsFmp4.pm); ffprobe/ffmpeg read the playlists over nginx's HTTP. hls.js playing
# one in headless Chromium is t/28-hls-fmp4.t.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Mp4 qw(parse_init);
use Test::Nginx::HlsFmp4 qw(playlist wait_segments check_segments decode probe_pair files);

run_tests();

__DATA__

=== TEST 1: fMP4 HLS: VERSION 7, EXT-X-MAP first, init with two traks, moof/tfdt continuity, ffmpeg over HTTP
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_playlist_length 10s;
        hls_fragment_type fmp4;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ {
        alias $TEST_NGINX_PREFIX/hls/;
        types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 90);
my $p = wait_segments("$dir/test.m3u8", 5, 40);
ok($p && @{ $p->{segs} } >= 5, 'five segments listed') or return diag(publisher_log($pub));
my $t = $p->{text};
like($t, qr/\A#EXTM3U\n#EXT-X-VERSION:7\n/, 'VERSION 7 (EXT-X-MAP needs 6 or more)');
like($t, qr/^#EXT-X-INDEPENDENT-SEGMENTS$/m, 'independent segments');
ok($p->{first_map_line} && $p->{first_map_line} < $p->{first_inf_line}, 'EXT-X-MAP before the first segment');
is(scalar @{ $p->{maps} }, 1, 'one EXT-X-MAP');
like($p->{maps}[0], qr/^test-init-\d+\.mp4$/, "init URI $p->{maps}[0]");
ok(!grep({ $_->{uri} !~ /^test-\d+\.m4s$/ } @{ $p->{segs} }), 'segments are test-<n>.m4s');
ok(!grep({ int($_->{dur} + 0.5) > $p->{target} } @{ $p->{segs} }), "every EXTINF rounds to <= TARGETDURATION $p->{target}");
my @inner = @{ $p->{segs} }[1 .. $#{ $p->{segs} } - 1];
ok(!grep({ $_->{dur} < 1.9 || $_->{dur} > 2.1 } @inner), 'segments last one 2 s GOP')
    or diag(join ' ', map { $_->{dur} } @{ $p->{segs} });
my $init = parse_init(Test::Nginx::Rtmp::slurp("$dir/$p->{maps}[0]"));
is($init->{top}, 'ftyp,moov', 'init: ftyp then moov');
is($init->{moov}, 'mvhd,trak,trak,mvex', 'moov: mvhd, two traks, mvex');
is(join(',', map { "$_->{id}:$_->{handler}:$_->{entry}:$_->{config}" } @{ $init->{tracks} }), '1:vide:avc1:avcC,2:soun:mp4a:esds',
   'video track 1 (avc1+avcC), audio track 2 (mp4a+esds)');
is(join(',', @{ $init->{trex} }), '1,2', 'a trex per track');
cmp_ok($init->{next_track_id}, '>', 2, 'mvhd next_track_ID past both tracks');
my @bad = check_segments($dir, $p, '1,2');
is(scalar @bad, 0, 'every segment: moof+mdat per track, offsets, increasing mfhd, tfdt continuity, keyframe first')
    or diag(join "\n", @bad);
my ($codecs, $perr) = probe_pair("$dir/$p->{maps}[0]", "$dir/$p->{segs}[1]{uri}");
is($codecs, 'h264,avc1;aac,mp4a', 'ffprobe reads init + segment as H.264 (avc1) and AAC') or diag($perr);
my ($code, $head) = Test::Nginx::Rtmp::run_cmd(['curl', '-sI', "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/$p->{segs}[0]{uri}"], timeout => 10);
like($head, qr/^HTTP\/1\.1 200/, 'nginx serves the segment');
my ($frames, $afr, $err) = decode("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/test.m3u8", 6);
cmp_ok($frames, '>=', 140, "ffmpeg decodes 6 s of the live playlist over HTTP ($frames video frames)");
cmp_ok($afr, '>=', 6 * 43 - 20, "and its audio ($afr frames)");
is($err, '', 'without a decoding error');
my $p2;
wait_until(sub { $p2 = playlist("$dir/test.m3u8"); ($p2->{seq} // -1) > $p->{seq} }, 15, 0.2);
my %by_seq1 = map { ($p->{seq} + $_ => $p->{segs}[$_]{uri}) } 0 .. $#{ $p->{segs} };
my %by_seq2 = map { ($p2->{seq} + $_ => $p2->{segs}[$_]{uri}) } 0 .. $#{ $p2->{segs} };
ok(!grep({ exists $by_seq2{$_} && $by_seq2{$_} ne $by_seq1{$_} } keys %by_seq1), 'a media sequence number always names the same URI');
cmp_ok($p2->{seq}, '>', $p->{seq}, 'the window slid');
is($p2->{maps}[0], $p->{maps}[0], 'the same init');
@bad = check_segments($dir, $p2, '1,2');
is(scalar @bad, 0, 'tfdt continuity over the slid window') or diag(join "\n", @bad);
cmp_ok(scalar(my @tmp = files($dir, qr/\.tmp$/)), '==', 0, 'no temporary file left');
stop($pub);
--- no_error_log
[error]


=== TEST 2: a whole published file: frame counts, EXT-X-ENDLIST (hls_type event), durations add up
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_type event;
        hls_fragment_type fmp4;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/ev", timeout => 30);
ok(defined wait_publisher($pub, 25), 'the 10 s publish ended');
my $p;
ok(wait_until(sub { $p = playlist("$dir/ev.m3u8"); $p->{text} =~ /#EXT-X-ENDLIST\n\z/ }, 5, 0.2), 'EXT-X-ENDLIST');
like($p->{text}, qr/^#EXT-X-PLAYLIST-TYPE:EVENT$/m, 'PLAYLIST-TYPE:EVENT');
is(scalar @{ $p->{segs} }, 5, 'five 2 s segments') or diag($p->{text});
my $total = 0; $total += $_->{dur} for @{ $p->{segs} };
ok(abs($total - 10) < 0.2, "they add up to the 10 s published ($total)");
my @bad = check_segments($dir, $p, '1,2');
is(scalar @bad, 0, 'boxes and tfdt continuity') or diag(join "\n", @bad);
my ($v, $a, $err) = decode("$dir/ev.m3u8");
ok($v >= 245 && $v <= 252, "ffmpeg decodes every video frame (250 published: $v)");
ok($a >= 420 && $a <= 440, "and the audio (~431 AAC frames: $a)");
is($err, '', 'without an error');


=== TEST 3: HEVC: hvc1 sample entry with hvcC, hvc1 CODECS in the master playlist, ffmpeg decodes
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_fragment_type fmp4;
        hls_variant _hd BANDWIDTH=1000000;
    }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $pub = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc_hd", hevc_flv('enhanced'), loop => 1,
                       args => ['--fourcc', 'hvc1'], timeout => 40);
my $p = wait_segments("$dir/hevc_hd.m3u8", 3, 30);
ok($p, 'HEVC segments') or return diag(publisher_log($pub));
my $init = parse_init(Test::Nginx::Rtmp::slurp("$dir/$p->{maps}[0]"));
is(join(',', map { "$_->{entry}:$_->{config}" } @{ $init->{tracks} }), 'hvc1:hvcC', 'init: hvc1 with hvcC (Safari)');
my @bad = check_segments($dir, $p, '1');
is(scalar @bad, 0, 'segments: boxes and tfdt continuity') or diag(join "\n", @bad);
my $m;
wait_until(sub { $m = Test::Nginx::Rtmp::slurp("$dir/hevc.m3u8"); $m =~ /CODECS/ }, 10, 0.2);
like($m, qr/^#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=\d+x\d+,CODECS="hvc1\.[0-9]\.[0-9A-F]+\.[LH]\d+(\.[0-9A-F]+)*"/m,
     'master playlist CODECS hvc1.…') or diag($m);
my ($codecs) = probe_pair("$dir/$p->{maps}[0]", "$dir/$p->{segs}[1]{uri}");
is($codecs, 'hevc,hvc1', 'ffprobe: HEVC tagged hvc1');
my ($frames, undef, $err) = decode("$dir/hevc_hd.m3u8", 2);
cmp_ok($frames, '>=', 45, "ffmpeg decodes the HEVC playlist ($frames frames)");
is($err, '', 'without an error');
stop($pub);


=== TEST 4: nested layout and variants: master playlist with CODECS, nested init and segments, ffprobe via the master
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_nested on;
        hls_fragment 2s;
        hls_fragment_type fmp4;
        hls_variant _hi BANDWIDTH=2400000;
        hls_variant _lo BANDWIDTH=200000;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ { alias $TEST_NGINX_PREFIX/hls/; }
}
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $hi = publish("$base/show_hi", file => media('bench.flv'), loop => 1, timeout => 60);
my $lo = publish("$base/show_lo", loop => 1, timeout => 60);
my $p = wait_segments("$dir/show_hi/index.m3u8", 2, 30);
ok($p, 'nested playlist show_hi/index.m3u8');
like($p->{segs}[0]{uri}, qr/^\d+\.m4s$/, 'segment URIs relative to the stream directory');
like($p->{maps}[0], qr/^init-\d+\.mp4$/, 'init URI too');
ok(-s "$dir/show_hi/$p->{maps}[0]" && -s "$dir/show_hi/$p->{segs}[0]{uri}", 'files in the stream directory');
wait_segments("$dir/show_lo/index.m3u8", 2, 30);
my $m;
wait_until(sub { $m = Test::Nginx::Rtmp::slurp("$dir/show.m3u8"); ($m =~ tr/\n//) >= 7 }, 10, 0.2);
like($m, qr/^#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",FRAME-RATE=30\.000\nshow_hi\/index\.m3u8$/m,
     'the _hi variant with its resolution and codecs') or diag($m);
like($m, qr/^#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=640x360,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",FRAME-RATE=25\.000\nshow_lo\/index\.m3u8$/m,
     'the _lo variant');
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries', 'stream=width',
    '-of', 'csv=p=0', "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/show.m3u8"], timeout => 30);
my %w = map { $_ => 1 } grep { /^\d+$/ } split /\n/, $out;
ok($w{1280} && $w{640}, 'ffprobe reads both variants through the master playlist over HTTP') or diag("$out $err");
stop($_) for $hi, $lo;


=== TEST 5: AES-128 on fMP4: segments encrypted whole, init clear before the first key, ffmpeg decrypts; a republish gets a new init under KEY:METHOD=NONE
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_fragment_type fmp4;
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
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/sec";
my $pub = publish($url, loop => 1, timeout => 60);
my $p = wait_segments("$dir/sec.m3u8", 5, 30);
ok($p, 'five segments');
my @keys = $p->{text} =~ /^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"$/mg;
cmp_ok(scalar @keys, '>=', 2, 'keys rotate every 2 segments');
ok($p->{first_map_line} < $p->{first_key_line}, 'EXT-X-MAP comes before the first EXT-X-KEY: the init is clear');
my $init = Test::Nginx::Rtmp::slurp("$dir/$p->{maps}[0]");
is(substr($init, 4, 4), 'ftyp', 'the init file is not encrypted');
my $seg = Test::Nginx::Rtmp::slurp("$dir/$p->{segs}[0]{uri}");
is(length($seg) % 16, 0, 'segment length is whole AES blocks');
isnt(substr($seg, 4, 4), 'moof', 'segment on disk is not plain fMP4');
my ($frames, undef, $err) = decode("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/hls/sec.m3u8", 4);
cmp_ok($frames, '>=', 90, "ffmpeg decrypts and decodes the playlist ($frames frames)");
is($err, '', 'without an error');
stop($pub);
ok(wait_unpublished('sec'), 'unpublished');
$pub = publish($url, loop => 1, timeout => 60);
my $n1 = @{ $p->{segs} };
my $p2;
wait_until(sub { $p2 = playlist("$dir/sec.m3u8"); @{ $p2->{maps} } >= 2 && $p2->{segs}[-1]{map} eq $p2->{maps}[-1] }, 30, 0.2);
is(scalar @{ $p2->{maps} }, 2, 'a second EXT-X-MAP after the republish') or diag($p2->{text});
like($p2->{text}, qr/^#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=NONE\n#EXT-X-MAP:URI="[^"]+"\n#EXT-X-KEY:METHOD=AES-128,URI="[^"]+"\n/m,
     'DISCONTINUITY, KEY:METHOD=NONE, the new MAP (clear), then the key again');
is(substr(Test::Nginx::Rtmp::slurp("$dir/$p2->{maps}[1]"), 4, 4), 'ftyp', 'the new init is clear');
is($p2->{maps}[0], $p->{maps}[0], 'the first publish keeps its init');
stop($pub);


=== TEST 6: republish across a reload: the sequence goes on after a discontinuity with a new EXT-X-MAP; cleanup removes inits too
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_playlist_length 30s;
        hls_fragment_type fmp4;
    }
}
--- reloads
--- run
my $dir = "$TEST_NGINX_PREFIX/hls";
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/re";
my $pub = publish($url, loop => 1, timeout => 60);
my $p1 = wait_segments("$dir/re.m3u8", 3, 30);
stop($pub);
ok(wait_unpublished('re') && wait_until(sub { !files($dir, qr/\.tmp$/) }, 10, 0.1), 'the first publish is finished');
$p1 = playlist("$dir/re.m3u8");
my $n1 = @{ $p1->{segs} };
my $master = `cat $TEST_NGINX_PREFIX/logs/nginx.pid` + 0;
my @old = Test::Nginx::Rtmp::worker_pids($master);
ok(kill('HUP', $master), 'nginx reloads');
ok(wait_until(sub { my @w = Test::Nginx::Rtmp::worker_pids($master); @w == 1 && !grep({ kill 0, $_ } @old) }, 20),
   'the new worker took over');
$pub = publish($url, loop => 1, timeout => 60);
my $p2 = wait_segments("$dir/re.m3u8", $n1 + 2, 30);
ok($p2, 'the second publish adds segments');
is($p2->{seq}, $p1->{seq}, 'the media sequence continues');
is($p2->{segs}[$_]{uri}, $p1->{segs}[$_]{uri}, "segment $_ of the first publish is still listed") for 0 .. $n1 - 1;
is($p2->{segs}[0]{map}, $p1->{maps}[0], 'with its own init');
ok($p2->{segs}[$n1]{discont}, 'EXT-X-DISCONTINUITY before the first new segment');
isnt($p2->{segs}[$n1]{map}, $p1->{maps}[0], 'and a new EXT-X-MAP');
like($p2->{text}, qr/^#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=/m, 'MAP right after the DISCONTINUITY');
is(scalar(grep { $_->{discont} } @{ $p2->{segs} }), 1, 'one discontinuity');
my ($id1) = $p2->{segs}[$n1 - 1]{uri} =~ /(\d+)\.m4s$/;
my ($id2) = $p2->{segs}[$n1]{uri} =~ /(\d+)\.m4s$/;
is($id2, $id1 + 1, 'file numbering continues');
ok(-s "$dir/$p2->{segs}[0]{uri}" && -s "$dir/$p1->{maps}[0]", 'the old segments and init were not cleaned up');
# From the first listed segment: across the discontinuity into the new publish.
my $first = 0; $first += $_->{dur} for @{ $p2->{segs} };
my ($v, undef, $err) = decode("$dir/re.m3u8", int($first), '-live_start_index', '0');
my $old = 0; $old += $p2->{segs}[$_]{dur} for 0 .. $n1 - 1;
# Every frame of the first publish, then at least a second of the new one after the new init.
cmp_ok($v, '>=', int(25 * $old) + 25, "ffmpeg decodes from the first publish across the discontinuity ($v frames, "
       . "$old s before it)") or diag($err);
is($err, '', 'without an error');
stop($pub);
ok(wait_until(sub { !-e "$dir/re.m3u8" && !files($dir, qr/^re-/) }, 40, 0.2),
   'after the publisher left, playlist, segments and inits are removed after the grace period')
    or diag(join ' ', files($dir, qr/./));


=== TEST 7: audio-only and video-only streams: one trak, ffmpeg decodes
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 1s;
        hls_fragment_type fmp4;
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
my $ia = parse_init(Test::Nginx::Rtmp::slurp("$dir/$pa->{maps}[0]"));
is(join(',', map { "$_->{id}:$_->{entry}" } @{ $ia->{tracks} }), '2:mp4a', 'audio-only init: the audio trak');
ok(abs($pa->{segs}[1]{dur} - 1) < 0.1, 'audio-only segments are cut at hls_fragment') or diag($pa->{text});
my @bad = check_segments($dir, $pa, '2');
is(scalar @bad, 0, 'audio-only segments: boxes and tfdt') or diag(join "\n", @bad);
my $iv = parse_init(Test::Nginx::Rtmp::slurp("$dir/$pv->{maps}[0]"));
is(join(',', map { "$_->{id}:$_->{entry}" } @{ $iv->{tracks} }), '1:avc1', 'video-only init: the video trak');
@bad = check_segments($dir, $pv, '1');
is(scalar @bad, 0, 'video-only segments: boxes and tfdt') or diag(join "\n", @bad);
# Audio-only: its one stream is stream 0.
my ($fa, undef, $ea) = decode("$dir/aud.m3u8", 2);
cmp_ok($fa, '>', 60, "audio-only playlist decodes ($fa frames)");
is($ea, '', 'without an error');
my ($fv, undef, $ev) = decode("$dir/vid.m3u8", 2);
cmp_ok($fv, '>=', 45, "video-only playlist decodes ($fv frames)");
is($ev, '', 'without an error');
stop($_) for $a, $v;


=== TEST 8: a bad hls_fragment_type fails nginx -t with file:line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        hls_path /tmp;
        hls_fragment_type bogus;
    }
}
--- must_die: invalid value "bogus" in "hls_fragment_type" directive
--- must_die_line: 5
