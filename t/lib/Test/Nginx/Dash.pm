package Test::Nginx::Dash;
# DASH readers for the tests (t/27-dash.t, t/31-dash-files.t): HTTP GETs to the block's server,
# the MPD parsed and checked by the DASH-IF live rules, each version and segment of a live MPD
# watched over HTTP (CMAF boxes against S@t/S@d), FFmpeg decoding an MPD.
# Its box reader checks what the MPD promises (trex defaults, tfdt version, sync first sample);
# t/lib/Test/Nginx/Mp4.pm is the HLS one.
use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();
use Time::Local ();

our @EXPORT_OK = qw(http_get iso_time xs_duration parse_mpd sets_of watch_mpd mpd_rules across_versions
                    summary max_of min_of files_in ffmpeg_frames);

# ---------------------------------------------------------------------------------------------
# HTTP

# GET (or HEAD) $path from the block's http server: (status, headers, body); status 0 when the
# server did not answer within 10 s.
sub http_get {
    my ($path, $method) = @_;
    my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_HTTP_PORT}", Timeout => 5)
        or return (0, '', '');
    print $h (($method // 'GET') . " $path HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my $sel = IO::Select->new($h);
    my $resp = '';
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread($h, $resp, 65536, length $resp);
        last unless $n;
    }
    close $h;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return ($status // 0, $head // '', $body // '');
}

# ---------------------------------------------------------------------------------------------
# MPD

# Attributes of an XML start tag's attribute text.
sub attrs {
    my ($s) = @_;
    my %a;
    $a{$1} = $2 while ($s // '') =~ /([\w:]+)="([^"]*)"/g;
    return \%a;
}

# xs:dateTime (UTC, "Z") to epoch seconds (fractional).
sub iso_time {
    my ($s) = @_;
    return undef unless ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$/;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0);
}

# xs:duration (PTnHnMn.nS) to seconds.
sub xs_duration {
    my ($s) = @_;
    return undef unless ($s // '') =~ /^PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$/;
    return ($1 // 0) * 3600 + ($2 // 0) * 60 + ($3 // 0);
}

# The MPD's parts: { attr, periods => [{ attr, sets => [{ attr, type, tmpl, rep, segs => [{n, t, d}],
# channels }] }], utc => [attrs], utc_after_periods, text }, or undef if there is no MPD element.
sub parse_mpd {
    my ($x) = @_;
    my ($ma) = $x =~ /<MPD\b([^>]*)>/ or return undef;
    my %m = (text => $x, attr => attrs($ma), periods => []);
    for my $p ($x =~ m{(<Period\b.*?</Period>)}sg) {
        my %per = (attr => attrs(($p =~ /<Period\b([^>]*)>/)[0]), sets => []);
        for my $as ($p =~ m{(<AdaptationSet\b.*?</AdaptationSet>)}sg) {
            my %set = (attr => attrs(($as =~ /<AdaptationSet\b([^>]*)>/)[0]));
            $set{type} = $set{attr}{contentType} // '';
            $set{tmpl} = attrs(($as =~ /<SegmentTemplate\b([^>]*?)\/?>/)[0]);
            $set{rep} = attrs(($as =~ /<Representation\b([^>]*?)\/?>/)[0]);
            $set{reps} = () = $as =~ /<Representation\b/g;
            ($set{channels}) = $as =~ /<AudioChannelConfiguration\b[^>]*value="(\d+)"/;
            my ($n, $t, @segs) = ($set{tmpl}{startNumber} // 1);
            for my $s ($as =~ /<S\b([^>]*?)\/>/g) {
                my $a = attrs($s);
                $t = $a->{t} if defined $a->{t};
                my $r = $a->{r} // 0;
                $set{bad_r} = 1 if $r < 0;
                for (0 .. ($r < 0 ? 0 : $r)) {
                    push @segs, { n => $n++, t => $t, d => $a->{d} };
                    $t += $a->{d};
                }
            }
            $set{segs} = \@segs;
            push @{ $per{sets} }, \%set;
        }
        push @{ $m{periods} }, \%per;
    }
    $m{utc} = [ map { attrs($_) } $x =~ /<UTCTiming\b([^>]*?)\/?>/g ];
    my $last_period = rindex($x, '</Period>');
    my $first_utc = index($x, '<UTCTiming');
    $m{utc_after_periods} = $first_utc > $last_period && $last_period >= 0 ? 1 : 0;
    return \%m;
}

# The AdaptationSets of the MPD's last Period, by contentType.
sub sets_of {
    my ($m) = @_;
    return {} unless $m && @{ $m->{periods} };
    return { map { $_->{type} => $_ } @{ $m->{periods}[-1]{sets} } };
}

# A segment's URL, relative to the MPD at $mpd_url.
sub seg_url {
    my ($mpd_url, $tmpl, $n) = @_;
    (my $base = $mpd_url) =~ s{[^/]*$}{};
    (my $u = $tmpl) =~ s/\$Number\$/$n/g;
    return $base . $u;
}

sub xmllint_ok {
    my ($text) = @_;
    my $f = Test::Nginx::Rtmp::tmp_dir() . "/mpd-$$.xml";
    open my $fh, '>', $f or return "write $f: $!";
    print $fh $text;
    close $fh;
    my ($code, undef, $err) = Test::Nginx::Rtmp::run_cmd(['xmllint', '--noout', $f], timeout => 10);
    unlink $f;
    return $code ? "xmllint: $err" : '';
}

# ---------------------------------------------------------------------------------------------
# ISO BMFF

# The boxes in $d between $off and $end: [{type, off, size, body}]; a box running past $end
# ends the list (and sets {bad} on the last entry).
sub boxes {
    my ($d, $off, $end) = @_;
    my @b;
    while ($off + 8 <= $end) {
        my ($size, $type) = unpack('N a4', substr($d, $off, 8));
        my $hdr = 8;
        if ($size == 1) { $size = unpack('Q>', substr($d, $off + 8, 8)); $hdr = 16 }
        elsif ($size == 0) { $size = $end - $off }
        if ($size < $hdr || $off + $size > $end) { push @b, { type => $type, bad => 1 }; last }
        push @b, { type => $type, off => $off, size => $size, body => $off + $hdr };
        $off += $size;
    }
    return @b;
}

# The children of $box of a type ($skip: bytes of the box's own fields before its children).
sub kids {
    my ($d, $box, $type, $skip) = @_;
    return grep { $_->{type} eq $type } boxes($d, $box->{body} + ($skip // 0), $box->{off} + $box->{size});
}

sub path_box {
    my ($d, $box, @path) = @_;
    for my $p (@path) {
        my ($type, $skip) = ref $p ? @$p : ($p, 0);
        ($box) = kids($d, $box, $type, $skip) or return undef;
    }
    return $box;
}

# An init segment: { brands => [...], entry => sample entry type, trex_duration, timescale,
# mvex => 1/0, problems => [...] }.
sub parse_init {
    my ($d) = @_;
    my %r = (problems => []);
    my @top = boxes($d, 0, length $d);
    push @{ $r{problems} }, 'top-level boxes ' . join(',', map { $_->{type} } @top)
        unless "@{[map { $_->{type} } @top]}" eq 'ftyp moov' && !grep { $_->{bad} } @top;
    my ($ftyp) = grep { $_->{type} eq 'ftyp' } @top;
    my ($moov) = grep { $_->{type} eq 'moov' } @top;
    return \%r unless $ftyp && $moov;
    my $fb = substr($d, $ftyp->{body}, $ftyp->{size} - 8);
    $r{brands} = [ substr($fb, 0, 4), map { substr($fb, $_, 4) } grep { $_ % 4 == 0 } 8 .. length($fb) - 4 ];
    my $mvex = path_box($d, { body => $moov->{body} - 8 + 8, off => $moov->{off}, size => $moov->{size} }, 'mvex');
    $mvex //= path_box($d, $moov, 'mvex');
    $r{mvex} = $mvex ? 1 : 0;
    if ($mvex and my ($trex) = kids($d, $mvex, 'trex')) {
        my @f = unpack('N6', substr($d, $trex->{body}, 24));
        $r{trex_duration} = $f[3];
        $r{trex_flags} = $f[5];
    }
    my $mdhd = path_box($d, $moov, 'trak', 'mdia', 'mdhd');
    if ($mdhd) {
        my $v = unpack('C', substr($d, $mdhd->{body}, 1));
        $r{timescale} = unpack('N', substr($d, $mdhd->{body} + ($v == 1 ? 20 : 12), 4));
    }
    my $stsd = path_box($d, $moov, 'trak', 'mdia', 'minf', 'stbl', 'stsd');
    if ($stsd) {
        my ($entry) = boxes($d, $stsd->{body} + 8, $stsd->{off} + $stsd->{size});
        $r{entry} = $entry->{type} if $entry;
    }
    return \%r;
}

# A media segment: { frags => [{ seq, tfdt, tfdt_version, durations => [...], sync_first,
# nonsync_later }], problems => [...] }. $init (parse_init) gives the trex defaults.
sub parse_segment {
    my ($d, $init) = @_;
    my %r = (frags => [], problems => []);
    my @top = boxes($d, 0, length $d);
    push @{ $r{problems} }, 'a box runs past the end of the file' if grep { $_->{bad} } @top;
    my $mdat_expected;
    for my $i (0 .. $#top) {
        my $b = $top[$i];
        next if $b->{bad};
        if ($b->{type} eq 'moof') {
            my %f;
            my ($mfhd) = kids($d, $b, 'mfhd');
            $f{seq} = unpack('N', substr($d, $mfhd->{body} + 4, 4)) if $mfhd;
            my @trafs = kids($d, $b, 'traf');
            push @{ $r{problems} }, scalar(@trafs) . ' traf in a moof' unless @trafs == 1;
            my $traf = $trafs[0] or next;
            my ($tfhd) = kids($d, $traf, 'tfhd');
            my ($tfdt) = kids($d, $traf, 'tfdt');
            my @truns = kids($d, $traf, 'trun');
            unless ($tfhd && $tfdt && @truns == 1) {
                push @{ $r{problems} }, 'traf without tfhd, tfdt or one trun';
                next;
            }
            my $tf = unpack('N', substr($d, $tfhd->{body}, 4)) & 0xffffff;
            push @{ $r{problems} }, 'tfhd has base-data-offset' if $tf & 0x1;
            push @{ $r{problems} }, 'tfhd without default-base-is-moof' unless $tf & 0x20000;
            my $at = $tfhd->{body} + 8;
            $at += 8 if $tf & 0x1;
            $at += 4 if $tf & 0x2;
            my ($def_dur, $def_size, $def_flags) = ($init->{trex_duration}, undef, $init->{trex_flags});
            if ($tf & 0x8) { $def_dur = unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($tf & 0x10) { $def_size = unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($tf & 0x20) { $def_flags = unpack('N', substr($d, $at, 4)); $at += 4 }
            $f{tfdt_version} = unpack('C', substr($d, $tfdt->{body}, 1));
            $f{tfdt} = $f{tfdt_version} == 1 ? unpack('Q>', substr($d, $tfdt->{body} + 4, 8))
                                             : unpack('N', substr($d, $tfdt->{body} + 4, 4));
            my $trun = $truns[0];
            my $vf = unpack('N', substr($d, $trun->{body}, 4));
            my $fl = $vf & 0xffffff;
            my $count = unpack('N', substr($d, $trun->{body} + 4, 4));
            $at = $trun->{body} + 8;
            my ($data_offset, $first_flags);
            if ($fl & 0x1) { $data_offset = unpack('l>', substr($d, $at, 4)); $at += 4 }
            if ($fl & 0x4) { $first_flags = unpack('N', substr($d, $at, 4)); $at += 4 }
            push @{ $r{problems} }, 'trun without data-offset' unless defined $data_offset;
            my ($sizes, @durs, @flags) = (0);
            for my $k (0 .. $count - 1) {
                my ($dur, $size, $flags) = ($def_dur, $def_size, $def_flags);
                if ($fl & 0x100) { $dur = unpack('N', substr($d, $at, 4)); $at += 4 }
                if ($fl & 0x200) { $size = unpack('N', substr($d, $at, 4)); $at += 4 }
                if ($fl & 0x400) { $flags = unpack('N', substr($d, $at, 4)); $at += 4 }
                $at += 4 if $fl & 0x800;
                $flags = $first_flags if $k == 0 && defined $first_flags;
                push @durs, $dur // 0;
                push @flags, $flags // 0;
                $sizes += $size // 0;
            }
            $f{durations} = \@durs;
            $f{sync_first} = @flags && !($flags[0] & 0x10000) ? 1 : 0;
            # The samples sit in the mdat right after this moof.
            my $mdat = $top[$i + 1];
            if (!$mdat || $mdat->{type} ne 'mdat') {
                push @{ $r{problems} }, 'moof not followed by mdat';
            } else {
                push @{ $r{problems} }, "trun data-offset $data_offset does not point at the mdat payload"
                    if defined $data_offset && $b->{off} + $data_offset != $mdat->{body};
                push @{ $r{problems} }, "sample sizes $sizes != mdat payload " . ($mdat->{size} - ($mdat->{body} - $mdat->{off}))
                    if $sizes != $mdat->{size} - ($mdat->{body} - $mdat->{off});
            }
            push @{ $r{frags} }, \%f;
        }
    }
    push @{ $r{problems} }, 'no moof' unless @{ $r{frags} };
    my $prev;
    for my $f (@{ $r{frags} }) {
        push @{ $r{problems} }, "tfdt version $f->{tfdt_version}" unless $f->{tfdt_version} == 1;
        push @{ $r{problems} }, 'a zero sample duration' if grep { !$_ } @{ $f->{durations} };
        if ($prev) {
            my $sum = 0;
            $sum += $_ for @{ $prev->{durations} };
            push @{ $r{problems} }, "fragment tfdt $f->{tfdt} != previous $prev->{tfdt} + $sum"
                unless $f->{tfdt} == $prev->{tfdt} + $sum;
            push @{ $r{problems} }, 'mfhd sequence not increasing' unless $f->{seq} > $prev->{seq};
        }
        $prev = $f;
    }
    $r{tfdt} = @{ $r{frags} } ? $r{frags}[0]{tfdt} : undef;
    $r{duration} = 0;
    $r{duration} += $_ for map { @{ $_->{durations} } } @{ $r{frags} };
    $r{sync_first} = @{ $r{frags} } ? $r{frags}[0]{sync_first} : 0;
    return \%r;
}

# ---------------------------------------------------------------------------------------------
# Watching a live MPD

# Fetches the MPD at $url every $step s for $secs s; every version whose text changed is kept
# with its fetch time, and every segment it lists is fetched once (right after the MPD) and
# checked; until => sub { my ($mpd) = @_; ... } ends the watch early, at the first version (its
# segments checked) for which it is true. Returns { versions => [{ mpd, at }], problems =>
# { kind => [...] }, segs => {url => parsed}, inits => {url => parsed}, fetches }.
sub watch_mpd {
    my ($url, $secs, %opt) = @_;
    my (%seen, @versions, %problems, %inits);
    my $fetches = 0;
    my $end = Time::HiRes::time() + $secs;
    my $last_text = '';
    while (Time::HiRes::time() < $end) {
        my $at = Time::HiRes::time();
        my ($st, $head, $body) = http_get($url);
        $fetches++;
        if ($st != 200) {
            push @{ $problems{mpd_status} }, "MPD answered $st";
            Time::HiRes::sleep($opt{step} // 0.5);
            next;
        }
        if ($body ne $last_text) {
            $last_text = $body;
            my $m = parse_mpd($body);
            unless ($m) { push @{ $problems{mpd_parse} }, "no MPD element in: $body"; next }
            push @versions, { mpd => $m, at => $at };
            push @{ $problems{tmp_listed} }, 'a .tmp name in the MPD' if $body =~ /\.tmp\b/;
            if (my $e = xmllint_ok($body)) { push @{ $problems{xml} }, $e }
            for my $p (@{ $m->{periods} }) {
                for my $set (@{ $p->{sets} }) {
                    my $init_url = seg_url($url, $set->{tmpl}{initialization} // '', '');
                    unless ($inits{$init_url}) {
                        my ($ist, undef, $ibody) = http_get($init_url);
                        push @{ $problems{init_status} }, "$init_url: $ist" if $ist != 200;
                        $inits{$init_url} = parse_init($ibody);
                    }
                    my $init = $inits{$init_url};
                    for my $s (@{ $set->{segs} }) {
                        my $u = seg_url($url, $set->{tmpl}{media} // '', $s->{n});
                        next if $seen{$u};
                        my ($sst, undef, $sbody) = http_get($u);
                        if ($sst != 200) {
                            push @{ $problems{seg_status} }, "$u listed but answers $sst";
                            $seen{$u} = { missing => 1 };
                            next;
                        }
                        my $seg = parse_segment($sbody, $init);
                        $seg->{type} = $set->{type};
                        $seg->{listed} = $s;
                        $seen{$u} = $seg;
                        push @{ $problems{boxes} }, map { "$u: $_" } @{ $seg->{problems} };
                        push @{ $problems{tfdt} }, "$u: tfdt $seg->{tfdt} != S\@t $s->{t}"
                            unless defined $seg->{tfdt} && $seg->{tfdt} == $s->{t};
                        push @{ $problems{duration} }, "$u: trun durations $seg->{duration} != S\@d $s->{d}"
                            unless $seg->{duration} == $s->{d};
                        push @{ $problems{sync} }, "$u: first sample not sync"
                            if $set->{type} eq 'video' && !$seg->{sync_first};
                    }
                }
            }
            last if $opt{until} && $opt{until}->($m);
        }
        Time::HiRes::sleep($opt{step} // 0.5);
    }
    return { versions => \@versions, problems => \%problems, segs => \%seen, inits => \%inits, fetches => $fetches };
}

# The checks of one MPD version by the DASH-IF live rules; returns a list of problems.
sub mpd_rules {
    my ($m, %want) = @_;
    my @p;
    my $a = $m->{attr};
    push @p, "type $a->{type}" unless ($a->{type} // '') eq 'dynamic';
    push @p, 'xmlns' unless $m->{text} =~ /<MPD\b[^>]*xmlns="urn:mpeg:dash:schema:mpd:2011"/;
    push @p, "profiles $a->{profiles}" unless ($a->{profiles} // '') =~ /urn:mpeg:dash:profile:isoff-live:2011/;
    for (qw(availabilityStartTime publishTime)) {
        push @p, "$_ not an xs:dateTime" unless defined iso_time($a->{$_});
    }
    for (qw(minBufferTime minimumUpdatePeriod timeShiftBufferDepth suggestedPresentationDelay)) {
        push @p, "$_ not an xs:duration" unless defined xs_duration($a->{$_});
    }
    my $tsbd = xs_duration($a->{timeShiftBufferDepth}) // 0;
    my $spd = xs_duration($a->{suggestedPresentationDelay}) // 1e9;
    push @p, "timeShiftBufferDepth $tsbd, want $want{tsbd}"
        if defined $want{tsbd} && abs($tsbd - $want{tsbd}) > 0.001;
    push @p, "suggestedPresentationDelay $spd >= timeShiftBufferDepth $tsbd" unless $spd < $tsbd;
    push @p, 'no Period' unless @{ $m->{periods} };
    push @p, 'no UTCTiming' unless @{ $m->{utc} };
    push @p, 'UTCTiming before a Period' unless $m->{utc_after_periods};
    for my $u (@{ $m->{utc} }) {
        push @p, "UTCTiming scheme $u->{schemeIdUri}"
            unless ($u->{schemeIdUri} // '') =~ /^urn:mpeg:dash:utc:(http-xsdate|http-iso|http-head|direct):2014$/;
    }
    for my $per (@{ $m->{periods} }) {
        push @p, 'Period without id or start' unless defined $per->{attr}{id} && defined xs_duration($per->{attr}{start});
        for my $set (@{ $per->{sets} }) {
            push @p, 'AdaptationSet without id' unless defined $set->{attr}{id};
            push @p, "$set->{type}: no timescale" unless ($set->{tmpl}{timescale} // 0) > 1;
            push @p, "$set->{type}: media template $set->{tmpl}{media}" unless ($set->{tmpl}{media} // '') =~ /\$Number\$/;
            push @p, "$set->{type}: Representation without id or bandwidth"
                unless defined $set->{rep}{id} && ($set->{rep}{bandwidth} // 0) > 0;
            push @p, "$set->{type}: negative S\@r" if $set->{bad_r};
            push @p, "$set->{type}: no S" unless @{ $set->{segs} };
            my $prev;
            for my $s (@{ $set->{segs} }) {
                push @p, "$set->{type}: S\@d $s->{d}" unless $s->{d} > 0;
                push @p, "$set->{type}: segment $s->{n} starts at $s->{t}, previous ends at " . ($prev->{t} + $prev->{d})
                    if $prev && $s->{t} != $prev->{t} + $prev->{d};
                $prev = $s;
            }
        }
    }
    return @p;
}

# Checks across the versions of a watch: AST and ids constant, publishTime increasing, listed
# segments keep t/d, numbers rise, the availability of each new segment. Returns (problems,
# availability lags in s: publishTime of the first version listing a segment minus its announced
# availability).
sub across_versions {
    my ($versions) = @_;
    my (@p, @lags, %known);
    my ($ast0, $pt_prev, $ids0);
    for my $v (@$versions) {
        my $m = $v->{mpd};
        my $ast = $m->{attr}{availabilityStartTime} // '';
        $ast0 //= $ast;
        push @p, "availabilityStartTime changed from $ast0 to $ast" unless $ast eq $ast0;
        my $pt = iso_time($m->{attr}{publishTime}) // 0;
        push @p, "publishTime $m->{attr}{publishTime} not after the previous version's" if defined $pt_prev && $pt <= $pt_prev;
        $pt_prev = $pt;
        my $ids = join ';', map { my $per = $_; "P$per->{attr}{id}\@$per->{attr}{start}:" .
            join(',', map { "$_->{attr}{id}/$_->{rep}{id}/$_->{type}" } @{ $per->{sets} }) } @{ $m->{periods} };
        for my $per (@{ $m->{periods} }) {
            my $pstart = xs_duration($per->{attr}{start}) // 0;
            for my $set (@{ $per->{sets} }) {
                my $ts = $set->{tmpl}{timescale} || 1;
                my $pto = $set->{tmpl}{presentationTimeOffset} // 0;
                for my $s (@{ $set->{segs} }) {
                    my $key = "$set->{type}/$s->{n}";
                    if (my $k = $known{$key}) {
                        push @p, "$key was t=$k->{t} d=$k->{d}, now t=$s->{t} d=$s->{d}"
                            unless $k->{t} == $s->{t} && $k->{d} == $s->{d};
                    } else {
                        $known{$key} = $s;
                        my $avail = iso_time($ast) + $pstart + ($s->{t} + $s->{d} - $pto) / $ts;
                        push @lags, $pt - $avail;
                    }
                }
            }
        }
        # A Period's id, start and AdaptationSets never change while it is shown.
        for my $per (@{ $m->{periods} }) {
            my $sig = "$per->{attr}{start}:" . join(',', map { "$_->{attr}{id}/$_->{rep}{id}" } @{ $per->{sets} });
            my $k = "period $per->{attr}{id}";
            $known{$k} //= { sig => $sig };
            push @p, "$k was $known{$k}{sig}, now $sig" unless $known{$k}{sig} eq $sig;
        }
    }
    return (\@p, \@lags);
}

sub summary {
    my ($probs) = @_;
    my @all = map { my $k = $_; map { "$k: $_" } @{ $probs->{$k} } } sort keys %$probs;
    splice(@all, 12, @all - 12, '... ' . (@all - 12) . ' more') if @all > 12;
    return @all;
}

sub max_of { my $m; for (@_) { $m = $_ if !defined $m || $_ > $m } $m }
sub min_of { my $m; for (@_) { $m = $_ if !defined $m || $_ < $m } $m }

# The names of the files in a directory.
sub files_in {
    my ($dir) = @_;
    opendir(my $d, $dir) or return ();
    return sort grep { !/^\.\.?$/ } readdir $d;
}

# Decodes $secs s of $src with FFmpeg: (video frames, audio frames, stderr, exit code).
sub ffmpeg_frames {
    my ($src, $secs, $limit) = @_;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffmpeg', '-hide_banner', '-nostdin', '-v', 'error',
        '-i', $src, '-t', $secs, '-map', '0', '-f', 'framemd5', '-'], timeout => $limit // ($secs + 40));
    my (%type, %n);
    for (split /\n/, $out) {
        if (/^#media_type (\d+): (\w+)/) { $type{$1} = $2; next }
        $n{$1}++ if /^\s*(\d+),/;
    }
    my ($v, $a) = (0, 0);
    for (keys %n) { $v += $n{$_} if ($type{$_} // '') eq 'video'; $a += $n{$_} if ($type{$_} // '') eq 'audio' }
    return ($v, $a, $err, $code);
}

1;
