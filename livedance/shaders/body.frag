#version 330 core
#include "lighting.glsl"

uniform float u_pulse;  // 0..1 beat flash, brightens the rim light

in vec3 v_world;
in vec3 v_normal;
in vec4 v_light_clip;
flat in vec3 v_albedo;  // this dancer's colour

out vec4 f_color;

void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(u_camera_pos - v_world);
    // Wrapped diffuse keeps the terminator soft, like skin or matte plastic.
    float key_ndl = dot(n, u_key_dir);
    float key = clamp((key_ndl + 0.3) / 1.3, 0.0, 1.0);
    float bias = mix(0.004, 0.0015, clamp(key_ndl, 0.0, 1.0));
    // Self-shadow edges are small on screen: 4 taps are enough.
    float vis = shadow_visibility(v_light_clip, bias, 4);
    vec3 half_dir = normalize(u_key_dir + view);
    float spec = pow(max(dot(n, half_dir), 0.0), 40.0) * 0.25 * step(0.0, key_ndl);
    float fresnel = pow(1.0 - max(dot(n, view), 0.0), 3.0);
    float rim = max(dot(n, u_rim_dir), 0.0) * (0.35 + 0.65 * fresnel);
    vec3 ambient = mix(u_ground_color, u_sky_color, n.y * 0.5 + 0.5);
    // Contact darkening near the floor grounds the feet.
    float ground_ao = mix(0.55, 1.0, smoothstep(0.0, 0.35, v_world.y));
    vec3 color = v_albedo * (ambient * ground_ao + u_key_color * key * vis)
               + u_key_color * spec * vis
               + u_rim_color * rim * (1.0 + 1.5 * u_pulse);
    f_color = vec4(color, 1.0);
}
