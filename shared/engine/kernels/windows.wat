;; Max pooling, its gradient and block sums (bias gradients) for the wasm backend (called from
;; wasm-windows.ts through wasm-pool.ts, on two threads). The cpu kernel's semantics, in a fixed order of
;; operations.
;;
;; The window kernels share their first ten parameters: non-overlapping $fh x $fw windows of $nb NHWC
;; images at $x ($imgBytes apart, rows $rowBytes apart, $cBytes per pixel, channels a multiple of 4), giving
;; $oh x $ow outputs per image at $y ($cBytes per output pixel). Each visits windows and 4-channel groups.
;; Built by scripts/build-kernels.ts with the memory import shared and not.
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; maxPool: per lane, a pixel replaces the running max only if greater (f32x4.pmax: NaN never wins,
  ;; -Infinity to start), like the cpu kernel.
  (func $maxPool (export "maxPool")
    (param $x i32) (param $y i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $fh i32) (param $fw i32)
    (param $cBytes i32) (param $rowBytes i32) (param $imgBytes i32)
    (local $b i32) (local $r i32) (local $q i32) (local $ch i32) (local $px i32) (local $po i32) (local $i i32)
    (local $j i32) (local $cur v128)
    (local.set $po (local.get $y))
    (local.set $b (i32.const 0))
    (block $done_b
      (loop $for_b
        (br_if $done_b (i32.ge_u (local.get $b) (local.get $nb)))
        (local.set $r (i32.const 0))
        (block $done_r
          (loop $for_r
            (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
            (local.set $q (i32.const 0))
            (block $done_q
              (loop $for_q
                (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
                (local.set $px
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $b) (local.get $imgBytes)))
                      (i32.mul (i32.mul (local.get $r) (local.get $fh)) (local.get $rowBytes)))
                    (i32.mul (i32.mul (local.get $q) (local.get $fw)) (local.get $cBytes))))
                (local.set $ch (i32.const 0))
                (block $done_ch
                  (loop $for_ch
                    (br_if $done_ch (i32.ge_u (local.get $ch) (local.get $cBytes)))
                    (local.set $cur (v128.const f32x4 -inf -inf -inf -inf))
                    (local.set $i (i32.const 0))
                    (block $done_i
                      (loop $for_i
                        (br_if $done_i (i32.ge_u (local.get $i) (local.get $fh)))
                        (local.set $j (i32.const 0))
                        (block $done_j
                          (loop $for_j
                            (br_if $done_j (i32.ge_u (local.get $j) (local.get $fw)))
                            (local.set $cur
                              (f32x4.pmax
                                (local.get $cur)
                                (v128.load align=4
                                  (i32.add
                                    (i32.add
                                      (i32.add (local.get $px) (i32.mul (local.get $i) (local.get $rowBytes)))
                                      (i32.mul (local.get $j) (local.get $cBytes)))
                                    (local.get $ch)))))
                            (local.set $j (i32.add (local.get $j) (i32.const 1)))
                            (br $for_j)))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $for_i)))
                    (v128.store align=4 (i32.add (local.get $po) (local.get $ch)) (local.get $cur))
                    (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
                    (br $for_ch)))
                (local.set $po (i32.add (local.get $po) (local.get $cBytes)))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br $for_q)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $for_r)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $for_b))))

  ;; maxPoolGrad: dy of each window to the first position equal to its max (cpu semantics), 0 elsewhere;
  ;; every covered position of dx is written. $y holds the forward's output, $dy / $dx sit like $y / $x.
  (func $maxPoolGrad (export "maxPoolGrad")
    (param $x i32) (param $y i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $fh i32) (param $fw i32)
    (param $cBytes i32) (param $rowBytes i32) (param $imgBytes i32) (param $dy i32) (param $dx i32)
    (local $b i32) (local $r i32) (local $q i32) (local $ch i32) (local $px i32) (local $po i32) (local $i i32)
    (local $j i32) (local $yv v128) (local $rem v128) (local $hit v128)
    (local.set $po (local.get $y))
    (local.set $b (i32.const 0))
    (block $done_b
      (loop $for_b
        (br_if $done_b (i32.ge_u (local.get $b) (local.get $nb)))
        (local.set $r (i32.const 0))
        (block $done_r
          (loop $for_r
            (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
            (local.set $q (i32.const 0))
            (block $done_q
              (loop $for_q
                (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
                (local.set $px
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $b) (local.get $imgBytes)))
                      (i32.mul (i32.mul (local.get $r) (local.get $fh)) (local.get $rowBytes)))
                    (i32.mul (i32.mul (local.get $q) (local.get $fw)) (local.get $cBytes))))
                (local.set $ch (i32.const 0))
                (block $done_ch
                  (loop $for_ch
                    (br_if $done_ch (i32.ge_u (local.get $ch) (local.get $cBytes)))
                    (local.set $yv (v128.load align=4 (i32.add (local.get $po) (local.get $ch))))
                    (local.set $rem
                      (v128.load align=4
                        (i32.add (i32.sub (i32.add (local.get $po) (local.get $ch)) (local.get $y)) (local.get $dy))))
                    (local.set $i (i32.const 0))
                    (block $done_i
                      (loop $for_i
                        (br_if $done_i (i32.ge_u (local.get $i) (local.get $fh)))
                        (local.set $j (i32.const 0))
                        (block $done_j
                          (loop $for_j
                            (br_if $done_j (i32.ge_u (local.get $j) (local.get $fw)))
                            (local.set $hit
                              (f32x4.eq
                                (v128.load align=4
                                  (i32.add
                                    (i32.add
                                      (i32.add (local.get $px) (i32.mul (local.get $i) (local.get $rowBytes)))
                                      (i32.mul (local.get $j) (local.get $cBytes)))
                                    (local.get $ch)))
                                (local.get $yv)))
                            (v128.store align=4
                              (i32.add
                                (i32.sub
                                  (i32.add
                                    (i32.add
                                      (i32.add (local.get $px) (i32.mul (local.get $i) (local.get $rowBytes)))
                                      (i32.mul (local.get $j) (local.get $cBytes)))
                                    (local.get $ch))
                                  (local.get $x))
                                (local.get $dx))
                              (v128.and (local.get $rem) (local.get $hit)))
                            (local.set $rem (v128.andnot (local.get $rem) (local.get $hit)))
                            (local.set $j (i32.add (local.get $j) (i32.const 1)))
                            (br $for_j)))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $for_i)))
                    (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
                    (br $for_ch)))
                (local.set $po (i32.add (local.get $po) (local.get $cBytes)))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br $for_q)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $for_r)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $for_b))))

  ;; sumBlocks: float32 sums of each block of $block rows ($rows rows of $rowBytes at $src), one row of
  ;; $dst per block. (The caller totals the blocks in float64, as the cpu kernel sums.)
  (func $sumBlocks (export "sumBlocks")
    (param $src i32) (param $rows i32) (param $rowBytes i32) (param $block i32) (param $dst i32)
    (local $r i32) (local $j i32) (local $p i32) (local $out i32)
    (local.set $p (local.get $src))
    (local.set $out (local.get $dst))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (if (i32.eqz (i32.rem_u (local.get $r) (local.get $block)))
          (then
            (local.set $j (i32.const 0))
            (block $done_j
              (loop $for_j
                (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
                (v128.store align=4
                  (i32.add (local.get $out) (local.get $j))
                  (v128.const f32x4 0 0 0 0))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $for_j)))))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $out) (local.get $j))
              (f32x4.add
                (v128.load align=4 (i32.add (local.get $out) (local.get $j)))
                (v128.load align=4 (i32.add (local.get $p) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
        (if (i32.eqz (i32.rem_u (i32.add (local.get $r) (i32.const 1)) (local.get $block)))
          (then (local.set $out (i32.add (local.get $out) (local.get $rowBytes)))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r)))))
