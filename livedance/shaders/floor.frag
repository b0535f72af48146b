#version 330 core
#include "lighting.glsl"

uniform vec3 u_floor_color;
uniform vec3 u_spot_color;
uniform float u_spot_radius;
uniform vec3 u_floor_center;
uniform float u_fog_radius;
uniform float u_pulse;

in vec3 v_world;
in vec4 v_light_clip;

out vec4 f_color;

void main() {
    vec2 d = v_world.xz - u_floor_center.xz;
    float r = length(d);
    float vis = shadow_visibility(v_light_clip, 0.002, 8);
    // A soft spotlight pool under the dancers, the stage's main read.
    float pool = 1.0 - smoothstep(0.0, u_spot_radius, r);
    pool = pool * pool * (3.0 - 2.0 * pool);
    // Faint rings give the floor scale and motion parallax without a grid's busyness.
    float ring = smoothstep(0.985, 1.0, cos(r * 6.2832 / 0.75)) * 0.06 * (1.0 - smoothstep(0.5, u_fog_radius, r));
    vec3 lit = u_floor_color * (0.35 + 0.9 * u_key_color * vis * (0.25 + 0.75 * pool))
             + u_spot_color * pool * vis * (0.55 + 0.45 * u_pulse)
             + vec3(ring);
    // Glossy stage: a faint sheen towards the camera's grazing angle.
    vec3 view = normalize(u_camera_pos - v_world);
    lit += u_sky_color * pow(1.0 - view.y, 4.0) * 0.15;
    // Fade into the backdrop (alpha-blended over it) so the floor has no edge.
    float fade = 1.0 - smoothstep(u_fog_radius * 0.35, u_fog_radius, r);
    f_color = vec4(lit, fade);
}
