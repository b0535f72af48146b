#version 330 core
// A large square on the floor plane, centred under the dancers.
uniform mat4 u_view_proj;
uniform mat4 u_light_view_proj;
uniform vec3 u_floor_center;
uniform float u_floor_half_size;

in vec2 in_corner;  // -1..1

out vec3 v_world;
out vec4 v_light_clip;

void main() {
    vec3 world = u_floor_center + vec3(in_corner.x, 0.0, in_corner.y) * u_floor_half_size;
    v_world = world;
    v_light_clip = u_light_view_proj * vec4(world, 1.0);
    gl_Position = u_view_proj * vec4(world, 1.0);
}
